"""Top-k inner-product search over a gallery of features.

:func:`build_index` wraps a ``(N, D)`` gallery of features in an index
whose :meth:`~BaseIndex.search` returns, for each query row, the ``topk``
gallery rows with the largest inner product. With L2-normalised features
on both sides (as CLIP's image and text features are once normalised) the
inner product is the cosine similarity.

Kinds:

- ``'exact'`` (the default and the reference): brute force in torch. The
  queries and the gallery are cut into blocks so that at most
  ``max_block_elements`` scores (256 MB of float32 by default) exist at a
  time; each block keeps its own top-k and the blocks are merged. Equal
  scores rank by ascending gallery index, including at the k-th place:
  of several gallery rows tied for the last places, the lowest indices
  are kept. The ranking rule does not depend on the block sizes, but
  the scores can: BLAS may round a product differently for other matrix
  shapes (last bit of float32), which can swap near-equal scores.
- ``'faiss-flat'``: ``faiss.IndexFlatIP``, exhaustive (exact) search with
  FAISS kernels.
- ``'faiss-ivf'``: ``faiss.IndexIVFFlat`` with the inner-product metric,
  approximate: the gallery is split into ``nlist`` k-means cells and a
  query scans the ``nprobe`` cells with the closest centroids.

The FAISS kinds need ``faiss`` (``pip install faiss-cpu``, or
``faiss-gpu``); it is imported only when one of them is used.

Results are ``(scores, indices)``, each of shape ``(Q, k)`` with
``k = min(topk, N)``: float32 scores in decreasing order and int64
gallery row indices. They are numpy arrays when the queries are a numpy
array and CPU torch tensors when they are a tensor. All kinds order the
rows they return by ``(-score, index)``; only ``'exact'`` also promises
which of several rows tied for the k-th place are returned. A
``'faiss-ivf'`` query whose probed cells hold fewer than ``k`` rows gets
index ``-1`` and score ``-inf`` in the missing places.
"""
from .base import INDEX_KINDS, BaseIndex
from .build import build_index
from .exact import ExactIndex
from .faiss_index import FaissFlatIndex, FaissIVFIndex, default_nlist
from .io import load_index

__all__ = [
    'INDEX_KINDS', 'BaseIndex', 'ExactIndex', 'FaissFlatIndex',
    'FaissIVFIndex', 'build_index', 'default_nlist', 'load_index'
]
