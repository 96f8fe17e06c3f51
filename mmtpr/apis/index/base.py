"""Input checks and the interface shared by the index kinds."""
from typing import Any, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmtpr.evaluation.functional import check_positive_int
from mmtpr.evaluation.functional.checks import to_tensor

ArrayLike = Union[Tensor, np.ndarray]
SearchResult = Tuple[ArrayLike, ArrayLike]

INDEX_KINDS = ('exact', 'faiss-flat', 'faiss-ivf')

# Rows checked for NaN/inf at a time (bounds the temporary bool mask).
_CHECK_ROWS = 1 << 16


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def _to_float32_tensor(value: Any, name: str) -> Tensor:
    """``value`` as a detached float32 tensor (not copied when it already
    is one, or a float32 numpy array)."""
    return to_tensor(value, name, torch.float32)


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
    return min(check_positive_int(topk, 'topk'), ntotal)


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


