"""Utilities of mmtpr: errors, safe file reading and writing, checkpoint
files, images, distributed helpers, configs. Nothing here imports
:mod:`mmtpr.models`, :mod:`mmtpr.apis` or :mod:`mmtpr.engine`."""
from .checkpoint import (
    CorruptedCheckpointError,
    checkpoint_safe_globals,
    load_checkpoint_file,
    load_state_dict_file,
)
from .dist import (
    all_gather_with_grad,
    is_multiprocess,
    resolve_dist_backend,
    setup_dist,
)
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    MissingFileError,
    MMTPRError,
    UnsafeFileError,
)
from .fileio import atomic_write_bytes, read_bounded

__all__ = [
    'CheckpointError', 'ConfigError', 'CorruptedCheckpointError',
    'DataError', 'MMTPRError', 'MissingFileError', 'UnsafeFileError',
    'all_gather_with_grad', 'atomic_write_bytes', 'checkpoint_safe_globals',
    'is_multiprocess', 'load_checkpoint_file', 'load_state_dict_file',
    'read_bounded', 'resolve_dist_backend', 'setup_dist'
]
