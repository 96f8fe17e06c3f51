"""Exporting trained models for deployment."""
from .pytorch import export_pytorch

__all__ = ['export_pytorch']
