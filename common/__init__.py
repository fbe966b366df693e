"""Shared package of the MRI synthesis / super-resolution / segmentation bundles (see common/README.md)."""

from common.allocator import reuse_freed_memory as _reuse_freed_memory

__version__ = "0.1.0"

# once per process, for every bundle config, script and tool that imports the package (common/allocator.py: freed
# activation buffers are reused instead of faulted in again every training step)
_reuse_freed_memory()
