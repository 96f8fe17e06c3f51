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
import inspect
import math
import os
from contextlib import contextmanager
from numbers import Integral
from typing import Any, Iterator, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]
SearchResult = Tuple[ArrayLike, ArrayLike]

INDEX_KINDS = ('exact', 'faiss-flat', 'faiss-ivf')

# 2**26 float32 scores = 256 MB per block in the exact search.
DEFAULT_MAX_BLOCK_ELEMENTS = 2**26
# Rows checked for NaN/inf at a time (bounds the temporary bool mask).
_CHECK_ROWS = 1 << 16
# Points per k-means cell in the default IVF training sample; FAISS warns
# below 39 and subsamples above 256.
_IVF_TRAIN_POINTS_PER_LIST = 64
_IVF_MIN_POINTS_PER_LIST = 39
_NUMPY_MAGIC = b'\x93NUMPY'
_INT32_MAX = 2**31 - 1


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def _to_float32_tensor(value: Any, name: str) -> Tensor:
    """Return ``value`` as a detached float32 tensor (not copied when it
    already is one, or a float32 numpy array)."""
    if isinstance(value, Tensor):
        tensor = value.detach()
    else:
        if not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value)
            except (TypeError, ValueError) as err:
                raise TypeError(f'`{name}` must be a torch.Tensor or a '
                                f'numpy array, got {type(value).__name__}.'
                                ) from err
        if value.dtype.kind not in 'fiu':
            raise TypeError(f'`{name}` must hold real numbers, got dtype '
                            f'{value.dtype}.')
        value = np.ascontiguousarray(value, dtype=np.float32)
        if not value.flags.writeable:  # torch.from_numpy warns otherwise
            value = value.copy()
        tensor = torch.from_numpy(value)
    if tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f'`{name}` must hold real numbers, got dtype '
                        f'{tensor.dtype}.')
    return tensor.to(torch.float32)


def _check_2d(tensor: Tensor, name: str) -> None:
    if tensor.dim() != 2:
        hint = (f' (use `{name}[None]` for a single vector)'
                if tensor.dim() == 1 else '')
        raise ValueError(f'`{name}` must be 2-D (rows of features), got '
                         f'shape {tuple(tensor.shape)}{hint}.')
    if tensor.shape[1] == 0:
        raise ValueError(f'`{name}` must have at least one column, got '
                         f'shape {tuple(tensor.shape)}.')


def _check_finite(tensor: Tensor, name: str) -> None:
    for start in range(0, tensor.shape[0], _CHECK_ROWS):
        block = tensor[start:start + _CHECK_ROWS]
        # A NaN or inf makes the sum NaN or inf; one reduction pass is
        # ~10x faster than isfinite(). An overflowing sum of finite
        # values falls through to the exact check.
        if bool(torch.isfinite(block.sum())):
            continue
        finite = torch.isfinite(block).all(dim=1)
        if not bool(finite.all()):
            row = start + int((~finite).nonzero()[0, 0])
            raise ValueError(f'`{name}` must be finite, but row {row} '
                             'holds NaN or inf.')


def _check_features(features: Any) -> Tensor:
    """Validate a gallery: 2-D, at least one row, finite; float32."""
    tensor = _to_float32_tensor(features, 'features')
    _check_2d(tensor, 'features')
    if tensor.shape[0] == 0:
        raise ValueError('`features` must have at least one row, got shape '
                         f'{tuple(tensor.shape)}.')
    _check_finite(tensor, 'features')
    return tensor


def _check_queries(queries: Any, dim: int) -> Tuple[Tensor, bool]:
    """Validate queries; return them as float32 and whether the results
    should be numpy arrays."""
    as_numpy = not isinstance(queries, Tensor)
    tensor = _to_float32_tensor(queries, 'queries')
    _check_2d(tensor, 'queries')
    if tensor.shape[1] != dim:
        raise ValueError(f'`queries` have dimension {tensor.shape[1]}, but '
                         f'the index holds {dim}-d features.')
    _check_finite(tensor, 'queries')
    return tensor, as_numpy


def _check_topk(topk: Any, ntotal: int) -> int:
    """A positive int; values above the gallery size give the gallery
    size."""
    if isinstance(topk, bool) or not isinstance(topk, Integral) or topk < 1:
        raise ValueError(f'`topk` must be a positive int, got {topk!r}.')
    return min(int(topk), ntotal)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) \
            or value < 1:
        raise ValueError(f'`{name}` must be a positive int, got {value!r}.')
    return int(value)


def _as_numpy(tensor: Tensor) -> np.ndarray:
    """A float32 C-contiguous CPU array (FAISS needs one)."""
    return np.ascontiguousarray(tensor.detach().cpu().numpy(),
                                dtype=np.float32)


def _output(scores: ArrayLike, indices: ArrayLike,
            as_numpy: bool) -> SearchResult:
    if as_numpy:
        if isinstance(scores, Tensor):
            scores, indices = scores.cpu().numpy(), indices.cpu().numpy()
        return (np.ascontiguousarray(scores, dtype=np.float32),
                np.ascontiguousarray(indices, dtype=np.int64))
    if not isinstance(scores, Tensor):
        scores, indices = torch.from_numpy(scores), torch.from_numpy(indices)
    return scores.cpu().float(), indices.cpu().long()


# --------------------------------------------------------------------------
# Exact top-k with the (-score, index) order
# --------------------------------------------------------------------------
def _sort_by_score_then_index(scores: Tensor,
                              indices: Tensor) -> Tuple[Tensor, Tensor]:
    """Sort each row by decreasing score, equal scores by increasing
    index (indices are distinct within a row)."""
    indices, order = indices.sort(dim=1)
    scores = scores.gather(1, order)
    scores, order = scores.sort(dim=1, descending=True, stable=True)
    return scores, indices.gather(1, order)


def _block_topk(scores: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """The ``min(k, G)`` best columns of each row of a ``(q, G)`` block
    under the order (-score, column), unsorted.

    ``torch.topk`` picks an arbitrary subset of the columns tied for the
    k-th place. It is asked for ``k + 1`` values: where the (k+1)-th is
    below the k-th, no tie crosses the cut and its first ``k`` columns
    are the answer. Only the other rows are redone: all columns above the
    k-th score, then the lowest columns equal to it.
    """
    num_rows, num_cols = scores.shape
    if k >= num_cols:
        cols = torch.arange(num_cols, device=scores.device)
        return scores, cols.expand(num_rows, num_cols).clone()
    values, cols = scores.topk(k + 1, dim=1, largest=True, sorted=True)
    kth = values[:, k - 1]
    tied = values[:, k] == kth
    values, cols = values[:, :k].clone(), cols[:, :k].clone()
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        sub = scores.index_select(0, rows)
        threshold = kth.index_select(0, rows).unsqueeze(1)
        above = sub > threshold
        equal = sub == threshold
        missing = k - above.sum(dim=1, keepdim=True)
        keep = above | (equal & (equal.cumsum(dim=1) <= missing))
        kept = keep.nonzero()[:, 1].view(rows.numel(), k)
        values[rows] = sub.gather(1, kept)
        cols[rows] = kept
    return values, cols


# --------------------------------------------------------------------------
# Indexes
# --------------------------------------------------------------------------
class BaseIndex:
    """An inner-product top-k index over ``ntotal`` gallery rows.

    Build one with :func:`build_index`; subclasses implement
    :meth:`_search` and :meth:`save`.

    Attributes:
        kind (str): One of :data:`INDEX_KINDS`.
        ntotal (int): Number of gallery rows.
        dim (int): Feature dimension.
    """

    kind = ''

    def __init__(self, ntotal: int, dim: int) -> None:
        self.ntotal = int(ntotal)
        self.dim = int(dim)

    def search(self, queries: ArrayLike, topk: int = 10) -> SearchResult:
        """Find the ``topk`` gallery rows with the largest inner product.

        Args:
            queries (Tensor | np.ndarray): Query features, shape ``(Q, D)``
                with the index's ``D``; finite. Converted to float32.
            topk (int): How many gallery rows to return per query, at
                least 1; larger than ``ntotal`` returns ``ntotal``.

        Returns:
            tuple: ``(scores, indices)``, both of shape ``(Q, k)`` with
            ``k = min(topk, ntotal)``: float32 scores, best first, and the
            int64 gallery rows. numpy arrays for numpy queries, CPU
            tensors for tensor queries.

        Raises:
            ValueError: Queries that are not 2-D, have another dimension
                or hold NaN/inf; ``topk`` not a positive int.
        """
        query_tensor, as_numpy = _check_queries(queries, self.dim)
        k = _check_topk(topk, self.ntotal)
        if query_tensor.shape[0] == 0:
            return _output(torch.empty(0, k), torch.empty(0, k,
                                                          dtype=torch.long),
                           as_numpy)
        scores, indices = self._search(query_tensor, k)
        return _output(scores, indices, as_numpy)

    def _search(self, queries: Tensor, k: int) -> Tuple[ArrayLike,
                                                       ArrayLike]:
        raise NotImplementedError

    def save(self, path: str) -> None:
        """Write the index to ``path``; read it with :func:`load_index`."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(kind={self.kind!r}, '
                f'ntotal={self.ntotal}, dim={self.dim})')


class ExactIndex(BaseIndex):
    """Brute-force inner-product search in torch (kind ``'exact'``).

    The features are kept as a float32 tensor, without a copy when they
    already are a contiguous float32 tensor or array (changing them later
    changes the index). Searches run on the features' device, so a CUDA
    gallery is searched on the GPU.

    Args:
        features (Tensor | np.ndarray): Gallery, shape ``(N, D)``.
        max_block_elements (int): Most scores computed at a time; the
            queries and, when one query row alone is too long, the gallery
            are cut into blocks to stay within it. Default ``2**26``
            (256 MB of float32). Tie handling can take about three times
            as much for the rows with a tie at the k-th place.
        device (str | torch.device, optional): Where to keep the features
            and search; default: where they are.
    """

    kind = 'exact'

    def __init__(self,
                 features: ArrayLike,
                 *,
                 max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
                 device: Optional[Union[str, torch.device]] = None) -> None:
        tensor = _check_features(features)
        super().__init__(*tensor.shape)
        self.max_block_elements = _check_positive_int(max_block_elements,
                                                      'max_block_elements')
        if device is not None:
            tensor = tensor.to(device)
        self.features = tensor.contiguous()
        self.device = self.features.device

    def _search(self, queries: Tensor, k: int) -> Tuple[Tensor, Tensor]:
        queries = queries.to(self.device)
        num_queries, ntotal = queries.shape[0], self.ntotal
        query_step = max(1, min(num_queries,
                                self.max_block_elements // ntotal))
        gallery_step = max(1, min(ntotal,
                                  self.max_block_elements // query_step))
        out_scores = torch.empty(num_queries, k, device=self.device)
        out_indices = torch.empty(num_queries, k, dtype=torch.long,
                                  device=self.device)
        with torch.inference_mode():
            for q0 in range(0, num_queries, query_step):
                block_queries = queries[q0:q0 + query_step]
                best = None
                for g0 in range(0, ntotal, gallery_step):
                    gallery = self.features[g0:g0 + gallery_step]
                    scores, cols = _block_topk(block_queries @ gallery.T, k)
                    cols += g0
                    if best is not None:
                        scores = torch.cat([best[0], scores], dim=1)
                        cols = torch.cat([best[1], cols], dim=1)
                    scores, cols = _sort_by_score_then_index(scores, cols)
                    best = scores[:, :k], cols[:, :k]
                out_scores[q0:q0 + query_step] = best[0]
                out_indices[q0:q0 + query_step] = best[1]
        return out_scores, out_indices

    def save(self, path: str) -> None:
        """Write the features as a ``.npy`` file at ``path`` (as given)."""
        with open(path, 'wb') as f:
            np.save(f, self.features.cpu().numpy())


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
            num_threads = _check_positive_int(num_threads, 'num_threads')
        if blas_min_queries is not None:
            blas_min_queries = _check_positive_int(blas_min_queries,
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
        nprobe = _check_positive_int(nprobe, 'nprobe')
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
        nlist = _check_positive_int(nlist, 'nlist')
        if nlist > ntotal:
            raise ValueError(f'`nlist` ({nlist}) must not exceed the number '
                             f'of gallery rows ({ntotal}).')
        if train_size is None:
            train_size = _IVF_TRAIN_POINTS_PER_LIST * nlist
        train_size = min(max(_check_positive_int(train_size, 'train_size'),
                             nlist), ntotal)
        niter = _check_positive_int(niter, 'niter')
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
        value = _check_positive_int(value, 'nprobe')
        self.index.nprobe = min(value, int(self.index.nlist))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(kind={self.kind!r}, '
                f'ntotal={self.ntotal}, dim={self.dim}, nlist={self.nlist}, '
                f'nprobe={self.nprobe})')


def _check_options(cls, options: dict, what: str) -> None:
    """Raise a TypeError naming the options ``cls`` does not take."""
    accepted = [name for name, param in
                inspect.signature(cls.__init__).parameters.items()
                if param.kind == param.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f'Unknown option(s) for {what}: '
                        f'{", ".join(unknown)}; it takes '
                        f'{", ".join(accepted) or "none"}.')


_INDEX_CLASSES = {
    'exact': ExactIndex,
    'faiss-flat': FaissFlatIndex,
    'faiss-ivf': FaissIVFIndex,
}


def build_index(features: ArrayLike, kind: str = 'exact',
                **options) -> BaseIndex:
    """Build a top-k inner-product index over a gallery.

    Args:
        features (Tensor | np.ndarray): Gallery features, shape ``(N, D)``,
            finite; L2-normalised for cosine similarity. Converted to
            float32.
        kind (str): ``'exact'`` (default; brute force in torch),
            ``'faiss-flat'`` (exact, FAISS) or ``'faiss-ivf'``
            (approximate, FAISS).
        **options: Keyword options of the kind's class:
            :class:`ExactIndex` (``max_block_elements``, ``device``),
            :class:`FaissFlatIndex` (``num_threads``,
            ``blas_min_queries``), :class:`FaissIVFIndex` (``nlist``,
            ``nprobe``, ``train_size``, ``niter``, ``seed``,
            ``num_threads``, ``blas_min_queries``).

    Returns:
        BaseIndex: The index; see :meth:`BaseIndex.search`.

    Raises:
        ValueError: An unknown ``kind``, features that are not 2-D, empty
            or not finite, or a bad option value.
        TypeError: An option the kind does not take.
        ImportError: A FAISS kind without ``faiss`` installed.

    Example:
        >>> index = build_index(gallery_feats, kind='faiss-ivf', nprobe=32)
        >>> scores, indices = index.search(text_feats, topk=10)
    """
    if kind not in _INDEX_CLASSES:
        raise ValueError(f'Unknown index kind {kind!r}; choose one of '
                         f'{", ".join(INDEX_KINDS)}.')
    cls = _INDEX_CLASSES[kind]
    _check_options(cls, options, f'index kind {kind!r}')
    return cls(features, **options)


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
