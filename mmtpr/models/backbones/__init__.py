"""Backbones of mmtpr."""
from .open_clip_backbone import OpenCLIPBackbone

__all__ = ['OpenCLIPBackbone']
