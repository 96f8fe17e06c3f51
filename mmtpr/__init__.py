"""mmtpr: text-based person retrieval with parameter-efficient CLIP.

Importing the package is light and changes nothing outside it: the
components register themselves in mmtpr's own registries when the
registries first look them up (their ``locations``); MMEngine's file
backends, checkpoint loaders and torch's serialization settings are left
as they are (mmtpr's runs select its safe loader and atomic writes through
their config: ``runner_type='TPRRunner'``, see docs/security.md).
"""
from .version import __version__

__all__ = ['__version__']
