"""mmtpr: text-based person retrieval with parameter-efficient CLIP.

Importing the package is light: it registers nothing heavy and only applies
the checkpoint fixes that every entry point needs
(:func:`mmtpr.utils.checkpoint.setup_mmengine_checkpoints`: weights_only
loading, atomic writes, clear errors for damaged files).
Components are imported lazily through the registries' ``locations``.
"""
from .utils.checkpoint import (
                               allow_mmengine_checkpoint_globals,
                               setup_mmengine_checkpoints,
)
from .version import __version__

setup_mmengine_checkpoints()

__all__ = ['__version__', 'allow_mmengine_checkpoint_globals']
