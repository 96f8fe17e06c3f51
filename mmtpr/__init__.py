"""mmtpr: text-based person retrieval with parameter-efficient CLIP.

Importing the package is light: it registers nothing heavy and only applies
the one compatibility fix that every entry point needs
(:func:`mmtpr.utils.checkpoint.allow_mmengine_checkpoint_globals`).
Components are imported lazily through the registries' ``locations``.
"""
from .utils.checkpoint import allow_mmengine_checkpoint_globals
from .version import __version__

allow_mmengine_checkpoint_globals()

__all__ = ['__version__', 'allow_mmengine_checkpoint_globals']
