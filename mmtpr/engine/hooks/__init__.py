"""Hooks of mmtpr."""
from .load_balance_loss_hook import LoadBalanceLossHook

__all__ = ['LoadBalanceLossHook']
