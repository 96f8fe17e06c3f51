"""Exporting trained models for deployment."""
from .clip_weights import export_clip_weights
from .pytorch import export_pytorch

__all__ = ['export_clip_weights', 'export_pytorch']
