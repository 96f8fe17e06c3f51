"""The FAISS index kinds: ``'faiss-flat'`` (exhaustive) and
``'faiss-ivf'`` (approximate). ``faiss`` is imported only when used."""
import math
import os
from contextlib import contextmanager
from numbers import Integral
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from mmtpr.evaluation.functional import check_positive_int

from .base import ArrayLike, BaseIndex, _as_numpy, _check_features

# Points per k-means cell in the default IVF training sample; FAISS warns
# below 39 and subsamples above 256.
_IVF_TRAIN_POINTS_PER_LIST = 64
_IVF_MIN_POINTS_PER_LIST = 39
_INT32_MAX = 2**31 - 1


def _import_faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            'The FAISS index kinds (faiss-flat, faiss-ivf) need the faiss '
            'package: pip install faiss-cpu (or faiss-gpu), or use '
            "kind='exact'.") from err
    return faiss


@contextmanager
def _faiss_settings(faiss,
                    num_threads: Optional[int],
                    num_queries: Optional[int] = None,
                    blas_min_queries: Optional[int] = None) -> Iterator[None]:
    """Run FAISS with ``num_threads`` OpenMP threads (default: torch's)
    and, when both are given, its BLAS path if ``num_queries >=
    blas_min_queries`` and its SIMD scan otherwise; then restore both
    process-wide settings."""
    previous_threads = faiss.omp_get_max_threads()
    previous_threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.omp_set_num_threads(num_threads or torch.get_num_threads())
    if num_queries is not None and blas_min_queries is not None:
        faiss.cvar.distance_compute_blas_threshold = (
            0 if num_queries >= blas_min_queries else _INT32_MAX)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous_threads)
        faiss.cvar.distance_compute_blas_threshold = previous_threshold


class _FaissIndex(BaseIndex):
    """Shared part of the FAISS kinds: settings, search, save.

    FAISS's thread count and BLAS threshold are process-wide; they are
    set for the duration of each build or search and restored afterwards
    (do not search FAISS indexes from several Python threads at once).

    Args:
        num_threads (int, optional): OpenMP threads FAISS uses while it
            builds and searches; default ``torch.get_num_threads()`` at
            each call.
        blas_min_queries (int, optional): Searches of at least this many
            queries compute the scores with one BLAS matrix product per
            block, smaller ones with FAISS's SIMD scan of the gallery.
            Default 20, FAISS's long-standing threshold. FAISS 1.15 uses
            BLAS only from ``nq * d >= 128000`` (250 queries at d = 512),
            tuned for many cores; on 2 cores its SIMD scan made a
            100-query search of 100k rows ~13x slower than BLAS.
            ``None`` keeps FAISS's own setting.
    """

    def __init__(self,
                 index,
                 num_threads: Optional[int] = None,
                 blas_min_queries: Optional[int] = 20) -> None:
        self._faiss = _import_faiss()
        super().__init__(index.ntotal, index.d)
        if num_threads is not None:
            num_threads = check_positive_int(num_threads, 'num_threads')
        if blas_min_queries is not None:
            blas_min_queries = check_positive_int(blas_min_queries,
                                                  'blas_min_queries')
        self.num_threads = num_threads
        self.blas_min_queries = blas_min_queries
        self.index = index

    def _search(self, queries: Tensor,
                k: int) -> Tuple[np.ndarray, np.ndarray]:
        array = _as_numpy(queries)
        with _faiss_settings(self._faiss, self.num_threads, len(array),
                             self.blas_min_queries):
            scores, indices = self.index.search(array, k)
        missing = indices < 0
        if missing.any():
            scores[missing] = -np.inf
        # FAISS's heaps do not order equal scores: sort them by index.
        order = np.lexsort((indices, -scores), axis=-1)
        scores = np.take_along_axis(scores, order, axis=1)
        indices = np.take_along_axis(indices, order, axis=1)
        return scores, indices

    @classmethod
    def _wrap(cls, index, **options):
        """An instance around an existing FAISS index (no build)."""
        self = cls.__new__(cls)
        _FaissIndex.__init__(self, index, **options)
        return self

    def save(self, path: str) -> None:
        """Write the FAISS index to ``path`` with ``faiss.write_index``."""
        self._faiss.write_index(self.index, os.fspath(path))


class FaissFlatIndex(_FaissIndex):
    """Exhaustive inner-product search with ``faiss.IndexFlatIP``
    (kind ``'faiss-flat'``). FAISS keeps its own copy of the features.

    Args:
        features (Tensor | np.ndarray): Gallery, shape ``(N, D)``.
        num_threads (int, optional): See :class:`_FaissIndex`.
        blas_min_queries (int, optional): See :class:`_FaissIndex`.
    """

    kind = 'faiss-flat'

    def __init__(self,
                 features: ArrayLike,
                 *,
                 num_threads: Optional[int] = None,
                 blas_min_queries: Optional[int] = 20) -> None:
        faiss = _import_faiss()
        array = _as_numpy(_check_features(features))
        index = faiss.IndexFlatIP(array.shape[1])
        with _faiss_settings(faiss, num_threads):
            index.add(array)
        super().__init__(index, num_threads, blas_min_queries)


def default_nlist(ntotal: int) -> int:
    """The default number of IVF cells for ``ntotal`` gallery rows.

    ``round(sqrt(N))``, at most ``N // 39`` (so that k-means has the 39
    points per cell FAISS asks for) and at least 1. FAISS's guideline of
    ``4 * sqrt(N)`` to ``16 * sqrt(N)`` cells trades a 4x longer build
    (training and adding both scale with ``nlist``) for faster search; at
    1M rows on a few CPU cores the build would take minutes. Pass
    ``nlist`` to choose.
    """
    nlist = int(round(math.sqrt(ntotal)))
    return max(1, min(nlist, ntotal // _IVF_MIN_POINTS_PER_LIST))


class FaissIVFIndex(_FaissIndex):
    """Approximate inner-product search with ``faiss.IndexIVFFlat``
    (kind ``'faiss-ivf'``).

    Spherical k-means (FAISS's default for the inner product) on a random
    sample of the gallery splits it into ``nlist`` cells; a query scans
    the ``nprobe`` cells whose centroids have the largest inner product
    with it, exactly. ``nprobe = nlist`` scans everything and gives the
    exact result. The sample and k-means are seeded, so the same features
    and options give the same index.

    Args:
        features (Tensor | np.ndarray): Gallery, shape ``(N, D)``.
        nlist (int, optional): Number of cells, ``1 <= nlist <= N``;
            default :func:`default_nlist`.
        nprobe (int): Cells scanned per query; values above ``nlist``
            give ``nlist``. Default 16. Can be changed later through the
            ``nprobe`` attribute.
        train_size (int, optional): Rows k-means trains on, a random
            sample of the gallery; default
            ``min(N, 64 * nlist)``. Values are clipped to
            ``[nlist, N]``.
        niter (int): k-means iterations. Default 10 (FAISS's default).
        seed (int): Seed of the sample and of k-means. Default 0.
        num_threads (int, optional): See :class:`_FaissIndex`.
        blas_min_queries (int, optional): See :class:`_FaissIndex`; here
            it applies to finding the cells closest to the queries.
    """

    kind = 'faiss-ivf'

    def __init__(self,
                 features: ArrayLike,
                 *,
                 nlist: Optional[int] = None,
                 nprobe: int = 16,
                 train_size: Optional[int] = None,
                 niter: int = 10,
                 seed: int = 0,
                 num_threads: Optional[int] = None,
                 blas_min_queries: Optional[int] = 20) -> None:
        faiss = _import_faiss()
        nprobe = check_positive_int(nprobe, 'nprobe')
        index, self._quantizer = self._build(faiss, features, nlist,
                                             train_size, niter, seed,
                                             num_threads)
        super().__init__(index, num_threads, blas_min_queries)
        self.nprobe = nprobe

    @staticmethod
    def _build(faiss, features, nlist, train_size, niter, seed,
               num_threads):
        array = _as_numpy(_check_features(features))
        ntotal, dim = array.shape
        if nlist is None:
            nlist = default_nlist(ntotal)
        nlist = check_positive_int(nlist, 'nlist')
        if nlist > ntotal:
            raise ValueError(f'`nlist` ({nlist}) must not exceed the number '
                             f'of gallery rows ({ntotal}).')
        if train_size is None:
            train_size = _IVF_TRAIN_POINTS_PER_LIST * nlist
        train_size = min(max(check_positive_int(train_size, 'train_size'),
                             nlist), ntotal)
        niter = check_positive_int(niter, 'niter')
        if isinstance(seed, bool) or not isinstance(seed, Integral):
            raise ValueError(f'`seed` must be an int, got {seed!r}.')
        if train_size < ntotal:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(ntotal, train_size, replace=False))
            sample = array[rows]
        else:
            sample = array
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist,
                                   faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = int(seed) % 2**31
        index.cp.niter = niter
        # Train on the whole sample chosen above: no FAISS subsampling,
        # and no warning for the small samples `nlist <= N` allows.
        index.cp.max_points_per_centroid = -(-train_size // nlist)
        index.cp.min_points_per_centroid = 1
        with _faiss_settings(faiss, num_threads):
            index.train(sample)
            index.add(array)
        # The quantizer must live as long as the index: the caller keeps it.
        return index, quantizer

    @property
    def nlist(self) -> int:
        """Number of cells."""
        return int(self.index.nlist)

    @property
    def nprobe(self) -> int:
        """Cells scanned per query (at most ``nlist``)."""
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        value = check_positive_int(value, 'nprobe')
        self.index.nprobe = min(value, int(self.index.nlist))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(kind={self.kind!r}, '
                f'ntotal={self.ntotal}, dim={self.dim}, nlist={self.nlist}, '
                f'nprobe={self.nprobe})')


