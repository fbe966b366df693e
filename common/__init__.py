"""Shared package of the MRI synthesis / super-resolution / segmentation bundles (see common/README.md)."""

__version__ = "0.1.0"
