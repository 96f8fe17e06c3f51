"""Losses of mmtpr."""
from .sdm_loss import SDMLoss, sdm_loss

__all__ = ['SDMLoss', 'sdm_loss']
