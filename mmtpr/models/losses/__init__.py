"""Losses of mmtpr."""
from .load_balance_loss import LoadBalanceLoss
from .sdm_loss import SDMLoss, sdm_loss

__all__ = ['LoadBalanceLoss', 'SDMLoss', 'sdm_loss']
