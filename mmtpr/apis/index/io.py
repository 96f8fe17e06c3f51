"""Reading an index written by :meth:`BaseIndex.save`."""
import os

import numpy as np

from .base import BaseIndex
from .build import _check_options
from .exact import ExactIndex
from .faiss_index import FaissFlatIndex, FaissIVFIndex, _import_faiss

_NUMPY_MAGIC = b'\x93NUMPY'


def load_index(path: str, **options) -> BaseIndex:
    """Read an index written by :meth:`BaseIndex.save`.

    Args:
        path (str): The file.
        **options: For an ``'exact'`` index, the options of
            :class:`ExactIndex`; for a FAISS index, ``num_threads``,
            ``blas_min_queries`` and, for ``'faiss-ivf'``, ``nprobe``
            (default: the saved value).

    Returns:
        BaseIndex: The index, of the kind that was saved.

    Raises:
        ValueError: A FAISS index that is not an inner-product flat or
            IVF-flat index.
    """
    with open(path, 'rb') as f:
        magic = f.read(len(_NUMPY_MAGIC))
    if magic == _NUMPY_MAGIC:
        _check_options(ExactIndex, options, 'a saved exact index')
        return ExactIndex(np.load(path, allow_pickle=False), **options)
    faiss = _import_faiss()
    index = faiss.read_index(os.fspath(path))
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f'{path} holds a FAISS index with metric '
                         f'{index.metric_type}, not the inner product.')
    nprobe = options.pop('nprobe', None)
    _check_options(FaissFlatIndex, options, 'a saved FAISS index')
    if isinstance(index, faiss.IndexIVFFlat):
        loaded = FaissIVFIndex._wrap(index, **options)
        loaded._quantizer = None  # owned by the index read from disk
        if nprobe is not None:
            loaded.nprobe = nprobe
        return loaded
    if nprobe is not None:
        raise TypeError('`nprobe` applies to faiss-ivf indexes only.')
    if isinstance(index, faiss.IndexFlat):
        return FaissFlatIndex._wrap(index, **options)
    raise ValueError(f'{path} holds a FAISS {type(index).__name__}; only '
                     'IndexFlatIP and IndexIVFFlat are supported.')

