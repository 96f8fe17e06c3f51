"""Hooks of mmtpr."""
from .load_balance_loss_hook import LoadBalanceLossHook
from .petl_checkpoint_hook import PETLCheckpointHook
from .random_state_hook import RandomStateHook
from .test_split_monitor_hook import TestSplitMonitorHook

__all__ = ['LoadBalanceLossHook', 'PETLCheckpointHook', 'RandomStateHook',
           'TestSplitMonitorHook']
