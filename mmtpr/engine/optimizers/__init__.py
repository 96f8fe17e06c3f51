"""Optimizer wrappers and constructors of mmtpr."""
from .autocast_optim_wrapper import AutocastOptimWrapper, resolve_amp_dtype
from .tpr_optim_constructor import (
    TPROptimWrapperConstructor,
    summarize_param_groups,
)

__all__ = ['AutocastOptimWrapper', 'TPROptimWrapperConstructor',
           'resolve_amp_dtype', 'summarize_param_groups']
