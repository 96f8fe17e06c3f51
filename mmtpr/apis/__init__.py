"""Using a trained model: encoding, gallery search, search indexes,
export."""
from .gallery import Gallery, list_images
from .index import (
    INDEX_KINDS,
    BaseIndex,
    ExactIndex,
    FaissFlatIndex,
    FaissIVFIndex,
    build_index,
    default_nlist,
    load_index,
)
from .inferencer import TPRInferencer
from .preflight import preflight

__all__ = [
    'INDEX_KINDS', 'BaseIndex', 'ExactIndex', 'FaissFlatIndex',
    'FaissIVFIndex', 'Gallery', 'TPRInferencer', 'build_index',
    'default_nlist', 'list_images', 'load_index', 'preflight'
]
