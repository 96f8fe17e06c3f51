"""Utilities of mmtpr."""
from .checkpoint import (
                         CorruptedCheckpointError,
                         allow_mmengine_checkpoint_globals,
                         checkpoint_safe_globals,
                         setup_mmengine_checkpoints,
)
from .dist import (
                         all_gather_with_grad,
                         is_multiprocess,
                         resolve_dist_backend,
                         setup_dist,
)
from .petl_checkpoint import check_petl_checkpoint, load_petl_checkpoint

__all__ = [
    'CorruptedCheckpointError', 'allow_mmengine_checkpoint_globals',
    'check_petl_checkpoint', 'checkpoint_safe_globals',
    'load_petl_checkpoint', 'setup_mmengine_checkpoints',
    'all_gather_with_grad', 'is_multiprocess', 'resolve_dist_backend',
    'setup_dist'
]
