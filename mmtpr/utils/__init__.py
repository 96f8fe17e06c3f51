"""Utilities of mmtpr."""
from .checkpoint import (
                         allow_mmengine_checkpoint_globals,
                         checkpoint_safe_globals,
)
from .dist import (
                   all_gather_with_grad,
                   is_multiprocess,
                   resolve_dist_backend,
                   setup_dist,
)

__all__ = [
    'allow_mmengine_checkpoint_globals', 'checkpoint_safe_globals',
    'all_gather_with_grad', 'is_multiprocess', 'resolve_dist_backend',
    'setup_dist'
]
