"""Ranking metrics for text-based person retrieval (text -> image).

The public entry points are :func:`rank` (the metrics) and
:func:`rank_per_query` (the per-query results). The private helpers below
are shared with :class:`mmtpr.evaluation.TPRMetric`, which feeds the
similarity to :class:`_RankAccumulator` one chunk of queries at a time so
that the full ``(Q, G)`` similarity matrix never has to exist.
"""
from numbers import Integral
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

# How many offending query indices an error message lists.
_MAX_LISTED = 10
# The per-query results kept by _RankAccumulator(keep_details=True).
_DETAIL_KEYS = ('ap', 'inp', 'first_match_rank', 'topk_indices',
                'topk_scores')


def _to_tensor(value: Any, name: str) -> Tensor:
    """Convert a tensor, numpy array or sequence to a detached tensor."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f'`{name}` must be a torch.Tensor or a numpy '
                        f'array, got {type(value).__name__}.') from err


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex
                or dtype == torch.bool)


def _format_list(values: List[int]) -> str:
    """Format the first ``_MAX_LISTED`` values, then '...'."""
    listed = [str(v) for v in values[:_MAX_LISTED]]
    if len(values) > _MAX_LISTED:
        listed.append('...')
    return '[' + ', '.join(listed) + ']'


def _check_topk(topk: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    """Validate ``topk`` and return it as a tuple without duplicates."""
    if isinstance(topk, Integral) and not isinstance(topk, bool):
        topk = (topk, )
    if not isinstance(topk, Sequence) or isinstance(topk, str):
        raise ValueError('`topk` must be a positive int or a sequence of '
                         f'positive ints, got {topk!r}.')
    checked: List[int] = []
    for k in topk:
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError('`topk` must contain positive ints only, got '
                             f'{k!r} in {tuple(topk)!r}.')
        if int(k) not in checked:
            checked.append(int(k))
    return tuple(checked)


def _check_chunk_size(chunk_size: int) -> int:
    if (isinstance(chunk_size, bool) or not isinstance(chunk_size, Integral)
            or chunk_size < 1):
        raise ValueError('`chunk_size` must be a positive int, got '
                         f'{chunk_size!r}.')
    return int(chunk_size)


def _check_pids(pids: Tensor, name: str, expected_len: int,
                expected_what: str) -> Tensor:
    """Check that ``pids`` is a 1-D integer tensor of the expected length."""
    if tuple(pids.shape) != (expected_len, ):
        raise ValueError(
            f'`{name}` must have shape ({expected_len},) (the number of '
            f'{expected_what}), got shape {tuple(pids.shape)}.')
    if not _is_integer_dtype(pids.dtype):
        raise TypeError(f'`{name}` must hold integer person ids, got dtype '
                        f'{pids.dtype}.')
    return pids.to(torch.int64)


def _check_has_positives(query_pids: Tensor, gallery_pids: Tensor) -> None:
    """Raise ValueError if some query has no positive in the gallery.

    Works on the sorted gallery ids, so it costs O((Q + G) log G) and never
    builds a ``(Q, G)`` matrix.
    """
    sorted_gallery = torch.sort(gallery_pids).values
    query_pids = query_pids.to(sorted_gallery.device)
    left = torch.searchsorted(sorted_gallery, query_pids, right=False)
    right = torch.searchsorted(sorted_gallery, query_pids, right=True)
    missing = torch.nonzero(right == left).flatten()
    if missing.numel() > 0:
        raise ValueError(
            f'{missing.numel()} of {query_pids.numel()} queries have no '
            'positive (no gallery item with the same person id), so '
            'mAP/mINP are undefined for them. Query indices: '
            f'{_format_list(missing.tolist())}; their person ids: '
            f'{_format_list(query_pids[missing].tolist())}.')


def _check_keep_topk(keep_topk: int) -> int:
    if (isinstance(keep_topk, bool) or not isinstance(keep_topk, Integral)
            or keep_topk < 1):
        raise ValueError('`keep_topk` must be a positive int, got '
                         f'{keep_topk!r}.')
    return int(keep_topk)


class _RankAccumulator:
    """Accumulate R@k, AP and INP over chunks of queries.

    Each chunk is ranked with a stable descending sort, so equal scores are
    ranked by ascending gallery index. Every query passed to :meth:`update`
    must have at least one positive (see :func:`_check_has_positives`).

    With ``keep_details=True`` it also keeps, per query, AP, INP, the
    0-based rank of the first positive and the ``keep_topk`` best gallery
    indices and scores (see :meth:`details`). The top-k is the head of the
    stable sort the chunk is ranked with, not ``torch.topk``: ``topk``
    does not promise an order for equal scores (and on the CPU it does not
    return the lowest index first), so it could disagree with the ranks
    the metrics are computed from. This costs O(Q * keep_topk) memory
    beyond the per-chunk temporaries.

    Args:
        gallery_pids (Tensor): Gallery person ids, shape (G, ), int64.
        topk (tuple[int]): Validated cut-offs of R@k.
        keep_details (bool): Keep the per-query results.
            Defaults to False.
        keep_topk (int): How many gallery items to keep per query when
            ``keep_details``; ``min(keep_topk, G)`` are kept.
            Defaults to 10.
    """

    def __init__(self,
                 gallery_pids: Tensor,
                 topk: Tuple[int, ...],
                 keep_details: bool = False,
                 keep_topk: int = 10) -> None:
        self.gallery_pids = gallery_pids
        self.topk = topk
        self.num_queries = 0
        self.hits = [0] * len(topk)
        self.ap_sum = 0.0  # Python floats are float64.
        self.inp_sum = 0.0
        self.keep_details = keep_details
        self.keep_topk = min(_check_keep_topk(keep_topk),
                             int(gallery_pids.numel()))
        self._details: Dict[str, List[Tensor]] = {
            key: []
            for key in _DETAIL_KEYS
        }

    def update(self, similarity: Tensor, query_pids: Tensor,
               offset: int) -> None:
        """Rank one chunk of queries.

        Args:
            similarity (Tensor): Scores of the chunk, shape (n, G).
            query_pids (Tensor): Person ids of the chunk, shape (n, ), int64.
            offset (int): Index of the chunk's first query (for messages).
        """
        if not similarity.dtype.is_floating_point:
            similarity = similarity.double()
        nan_rows = torch.isnan(similarity).any(dim=1).nonzero().flatten()
        if nan_rows.numel() > 0:
            raise ValueError(
                '`similarity` contains NaN, e.g. in the rows of queries '
                f'{_format_list((nan_rows + offset).tolist())}.')
        device = similarity.device
        gallery_pids = self.gallery_pids.to(device)
        query_pids = query_pids.to(device)
        num = similarity.shape[0]

        # (n, G) int64, but only for this chunk.
        order = torch.argsort(similarity, dim=1, descending=True, stable=True)
        if self.keep_details:
            top_indices = order[:, :self.keep_topk].clone()
            top_scores = torch.gather(similarity, 1, top_indices)
        # Relevance in ranked order, bool (n, G).
        matches = query_pids[:, None] == gallery_pids[None, :]
        matches = torch.gather(matches, 1, order)
        del order

        # Positions of the positives in row-major order: rows ascending,
        # and ranks (0-based) ascending within a row.
        rows, ranks = torch.nonzero(matches, as_tuple=True)
        del matches
        num_pos = torch.bincount(rows, minlength=num)  # int64 (n, )
        if bool((num_pos == 0).any()):  # guarded against by the callers
            missing = (num_pos == 0).nonzero().flatten() + offset
            raise ValueError('Queries without a positive in the gallery: '
                             f'{_format_list(missing.tolist())}.')
        ends = torch.cumsum(num_pos, dim=0)
        starts = ends - num_pos
        first_rank = ranks[starts]  # 0-based rank of the first positive
        last_rank = ranks[ends - 1]  # 0-based rank of the last positive

        # The i-th positive of a row (1-based) is the value of cum at its
        # rank, so AP_q = (1 / |G_q|) * sum_i i / (rank_i + 1).
        ith = torch.arange(rows.numel(), device=device) - starts[rows] + 1
        precision = ith.double() / (ranks + 1).double()
        ap = torch.zeros(num, dtype=torch.float64, device=device)
        ap.index_add_(0, rows, precision)
        ap /= num_pos.double()
        inp = num_pos.double() / (last_rank + 1).double()

        # A k beyond the gallery size counts hits in the whole gallery.
        for i, k in enumerate(self.topk):
            self.hits[i] += int((first_rank < k).sum())
        self.ap_sum += float(ap.sum())
        self.inp_sum += float(inp.sum())
        self.num_queries += num
        if self.keep_details:
            values = (ap, inp, first_rank, top_indices, top_scores)
            for key, value in zip(_DETAIL_KEYS, values):
                self._details[key].append(value.cpu())

    def summarize(self) -> Dict[str, float]:
        """Return ``R{k}``, ``mAP`` and ``mINP`` in percent."""
        if self.num_queries == 0:
            raise ValueError('No query has been ranked.')
        num = self.num_queries
        result = {
            f'R{k}': 100.0 * hits / num
            for k, hits in zip(self.topk, self.hits)
        }
        result['mAP'] = 100.0 * self.ap_sum / num
        result['mINP'] = 100.0 * self.inp_sum / num
        return result

    def details(self) -> Dict[str, np.ndarray]:
        """Return the per-query results, in query order.

        Returns:
            dict[str, np.ndarray]: With Q the number of queries ranked and
            k = ``min(keep_topk, G)``:

            - ``ap`` (Q, ) float64: AP of each query, in [0, 1] (not
              percent; ``100 * ap.mean()`` is mAP);
            - ``inp`` (Q, ) float64: INP of each query, in [0, 1];
            - ``first_match_rank`` (Q, ) int64: 0-based rank of the first
              positive (R@k counts the queries where it is < k);
            - ``topk_indices`` (Q, k) int64: the k best gallery indices,
              best first, equal scores by ascending gallery index;
            - ``topk_scores`` (Q, k): their scores, in the dtype of the
              similarity (float32 for bfloat16).
        """
        if not self.keep_details:
            raise ValueError('Per-query details were not kept; build the '
                             'accumulator with keep_details=True.')
        if self.num_queries == 0:
            raise ValueError('No query has been ranked.')
        details = {}
        for key, chunks in self._details.items():
            value = torch.cat(chunks)
            if value.dtype == torch.bfloat16:  # numpy has no bfloat16
                value = value.float()
            details[key] = value.numpy()
        return details


def rank(similarity: ArrayLike,
         query_pids: ArrayLike,
         gallery_pids: ArrayLike,
         topk: Union[int, Sequence[int]] = (1, 5, 10),
         chunk_size: int = 1024) -> Dict[str, float]:
    """Compute R@k, mAP and mINP of text-to-image person retrieval.

    For every query (a text), the gallery (images) is sorted by similarity
    in descending order. A gallery item is relevant to a query iff it has
    the same person id; every query must have at least one. With ``M[q, j]``
    the relevance of the item at 0-based rank ``j`` of query ``q``,
    ``cum[q, j]`` the number of positives at ranks ``0..j`` and ``|G_q|``
    the number of positives of ``q``:

    - ``R@k = 100 * mean_q any(M[q, :k])``;
    - ``AP_q = (1 / |G_q|) * sum_j M[q, j] * cum[q, j] / (j + 1)``
      (non-interpolated, over the full gallery), ``mAP = 100 * mean_q
      AP_q``;
    - ``INP_q = |G_q| / (1-based rank of the last positive)``,
      ``mINP = 100 * mean_q INP_q``.

    Tie rule: the sort is stable, so gallery items with equal scores are
    ranked by ascending gallery index (the item that comes first in the
    gallery ranks first). The results are therefore deterministic, but
    they depend on the gallery order when scores tie.

    The queries are processed ``chunk_size`` rows at a time; the largest
    temporary is a ``(chunk_size, G)`` int64 sort index, so large problems
    (e.g. 19,848 x 19,848) fit in memory. The computation runs on the
    device of ``similarity``; AP and INP are accumulated in float64.

    Args:
        similarity (Tensor | np.ndarray): Query-to-gallery scores, higher
            is more similar, shape (Q, G). Must not contain NaN.
        query_pids (Tensor | np.ndarray): Integer person ids of the
            queries, shape (Q, ).
        gallery_pids (Tensor | np.ndarray): Integer person ids of the
            gallery items, shape (G, ).
        topk (int | Sequence[int]): The cut-offs k of R@k, positive ints.
            A k larger than G is allowed; R@k then counts hits in the
            whole gallery (i.e. it is 100). Defaults to (1, 5, 10).
        chunk_size (int): Number of queries ranked at a time.
            Defaults to 1024.

    Returns:
        dict[str, float]: ``R{k}`` for every k in ``topk`` (in that order,
        duplicates dropped), then ``mAP`` and ``mINP``; all in percent.

    Raises:
        ValueError: If ``similarity`` is not 2-D or is empty, if the pids
            do not have shapes (Q, ) and (G, ), if ``similarity`` contains
            NaN, if some query has no positive in the gallery, or if
            ``topk`` or ``chunk_size`` are not positive ints.
        TypeError: If the pids are not integers.

    Example:
        >>> import torch
        >>> from mmtpr.evaluation import rank
        >>> similarity = torch.tensor([[0.9, 0.1, 0.5],
        ...                            [0.7, 0.8, 0.2]])
        >>> query_pids = torch.tensor([0, 1])
        >>> gallery_pids = torch.tensor([1, 1, 0])
        >>> rank(similarity, query_pids, gallery_pids, topk=(1, 2))
        {'R1': 50.0, 'R2': 100.0, 'mAP': 75.0, 'mINP': 75.0}
    """
    topk = _check_topk(topk)
    accumulator = _rank_in_chunks(similarity, query_pids, gallery_pids,
                                  topk, chunk_size)
    return accumulator.summarize()


def rank_per_query(similarity: ArrayLike,
                   query_pids: ArrayLike,
                   gallery_pids: ArrayLike,
                   keep_topk: int = 10,
                   chunk_size: int = 1024) -> Dict[str, np.ndarray]:
    """Per-query results of the ranking that :func:`rank` evaluates.

    Same inputs, definitions, tie rule, checks and memory use as
    :func:`rank` (the queries are ranked ``chunk_size`` at a time; only
    ``O(Q * keep_topk)`` is kept), but returns one value per query instead
    of the means, for error analysis.

    Args:
        similarity (Tensor | np.ndarray): Query-to-gallery scores,
            shape (Q, G).
        query_pids (Tensor | np.ndarray): Person ids of the queries,
            shape (Q, ).
        gallery_pids (Tensor | np.ndarray): Person ids of the gallery,
            shape (G, ).
        keep_topk (int): How many of the best gallery items to return per
            query; ``k = min(keep_topk, G)``. Defaults to 10.
        chunk_size (int): Number of queries ranked at a time.
            Defaults to 1024.

    Returns:
        dict[str, np.ndarray]: ``ap`` (Q, ) and ``inp`` (Q, ) in [0, 1]
        (float64), ``first_match_rank`` (Q, ) the 0-based rank of the
        first positive (int64), ``topk_indices`` (Q, k) the best gallery
        indices, best first, equal scores by ascending gallery index
        (int64), and ``topk_scores`` (Q, k) their scores (the dtype of
        ``similarity``, float64 for integer scores).

    Example:
        >>> import torch
        >>> from mmtpr.evaluation import rank_per_query
        >>> similarity = torch.tensor([[0.9, 0.1, 0.5],
        ...                            [0.7, 0.8, 0.2]])
        >>> out = rank_per_query(similarity, [0, 1], [1, 1, 0], keep_topk=2)
        >>> out['first_match_rank'], out['topk_indices']
        (array([1, 0]), array([[0, 2],
               [1, 0]]))
    """
    keep_topk = _check_keep_topk(keep_topk)
    accumulator = _rank_in_chunks(similarity, query_pids, gallery_pids,
                                  (1, ), chunk_size, keep_details=True,
                                  keep_topk=keep_topk)
    return accumulator.details()


def _rank_in_chunks(similarity: ArrayLike,
                    query_pids: ArrayLike,
                    gallery_pids: ArrayLike,
                    topk: Tuple[int, ...],
                    chunk_size: int,
                    keep_details: bool = False,
                    keep_topk: int = 10) -> _RankAccumulator:
    """Validate the inputs of :func:`rank` and rank them chunk by chunk."""
    chunk_size = _check_chunk_size(chunk_size)
    similarity = _to_tensor(similarity, 'similarity')
    query_pids = _to_tensor(query_pids, 'query_pids')
    gallery_pids = _to_tensor(gallery_pids, 'gallery_pids')

    if similarity.dim() != 2:
        raise ValueError('`similarity` must be 2-D with shape (Q, G), got '
                         f'shape {tuple(similarity.shape)}.')
    num_queries, num_gallery = similarity.shape
    if num_queries == 0 or num_gallery == 0:
        raise ValueError('`similarity` must have at least one query and '
                         'one gallery item, got shape '
                         f'{tuple(similarity.shape)}.')
    query_pids = _check_pids(query_pids, 'query_pids', num_queries,
                             'queries, similarity.shape[0]')
    gallery_pids = _check_pids(gallery_pids, 'gallery_pids', num_gallery,
                               'gallery items, similarity.shape[1]')
    _check_has_positives(query_pids, gallery_pids)

    accumulator = _RankAccumulator(gallery_pids, topk,
                                   keep_details=keep_details,
                                   keep_topk=keep_topk)
    for start in range(0, num_queries, chunk_size):
        end = min(start + chunk_size, num_queries)
        accumulator.update(similarity[start:end], query_pids[start:end],
                           offset=start)
    return accumulator
