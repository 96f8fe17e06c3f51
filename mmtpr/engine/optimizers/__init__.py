"""Optimizer wrappers of mmtpr."""
from .amp_optim_wrapper import AmpOptimWrapper, resolve_amp_dtype

__all__ = ['AmpOptimWrapper', 'resolve_amp_dtype']
