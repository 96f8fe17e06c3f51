"""Data preprocessors of mmtpr."""
from .tpr_data_preprocessor import (
                                    CLIP_MEAN,
                                    CLIP_STD,
                                    RandomErasingNormalized,
                                    TPRDataPreprocessor,
)

__all__ = [
    'CLIP_MEAN', 'CLIP_STD', 'RandomErasingNormalized', 'TPRDataPreprocessor'
]
