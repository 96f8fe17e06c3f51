"""Hooks of mmtpr."""
from .load_balance_loss_hook import LoadBalanceLossHook
from .petl_checkpoint_hook import PETLCheckpointHook
from .random_state_hook import RandomStateHook

__all__ = ['LoadBalanceLossHook', 'PETLCheckpointHook', 'RandomStateHook']
