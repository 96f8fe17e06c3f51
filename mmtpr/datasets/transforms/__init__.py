"""Transforms of mmtpr (MMCV's and MMPretrain's image transforms are used
as they are)."""
from .formatting import PackTPRInputs
from .loading import LoadPersonImage
from .text import CaptionTransform, MaskCaption, TokenizeCaption

__all__ = ['CaptionTransform', 'LoadPersonImage', 'MaskCaption',
           'PackTPRInputs', 'TokenizeCaption']
