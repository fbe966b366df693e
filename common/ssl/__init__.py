"""U-SSL pre-training parts: two-view augmentation, encoder + heads, multi-task loss (see common/README.md)."""

from __future__ import annotations

from common.ssl.augment import TwoViewAugment
from common.ssl.heads import SSLNet
from common.ssl.losses import MultiTaskSSLLoss

__all__ = ["MultiTaskSSLLoss", "SSLNet", "TwoViewAugment"]
