"""Ranking metrics for text-based person retrieval (text -> image).

The public entry points are :func:`rank` (the metrics) and
:func:`rank_per_query` (the per-query results). Both rank the similarity
a chunk of queries at a time with the core in
:mod:`mmtpr.evaluation.functional.ranking`, which
:class:`mmtpr.evaluation.TPRMetric` shares.

How it is computed: the metrics need only the ranks of each query's
positives, so rows are not sorted. Each positive's rank is counted as the
number of gallery items that rank before it (see
:mod:`mmtpr.evaluation.functional.positives`); only rows where a gallery
item ties with a positive are sorted. The queries are processed
``chunk_size`` rows at a time; the largest temporaries are ``(chunk_size,
G)`` int32 bucket indices (int64 sort indices for the rows with ties), so
large problems (e.g. 19,848 x 19,848) fit in memory. The computation runs
on the device of ``similarity``; AP and INP are accumulated in float64.
"""
from typing import Dict, Sequence, Union

import numpy as np

from .checks import (
    ArrayLike,
    check_chunk_size,
    check_keep_topk,
    check_pids,
    check_similarity,
    check_topk,
)
from .ranking import RankAccumulator, rank_chunks, row_chunks

# The accumulator's name before it became public (kept for old imports).
_RankAccumulator = RankAccumulator


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

    Tie rule: equal scores rank by ascending gallery index (a stable
    sort): deterministic, but dependent on the gallery order. The queries
    are ranked ``chunk_size`` at a time on the device of ``similarity``,
    without sorting whole rows (see the module docstring).

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
        >>> similarity = [[0.9, 0.1, 0.5], [0.7, 0.8, 0.2]]
        >>> rank(similarity, [0, 1], [1, 1, 0], topk=(1, 2))
        {'R1': 50.0, 'R2': 100.0, 'mAP': 75.0, 'mINP': 75.0}
    """
    return _rank_in_chunks(similarity, query_pids, gallery_pids,
                           check_topk(topk), chunk_size).summarize()


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
    keep_topk = check_keep_topk(keep_topk)
    accumulator = _rank_in_chunks(similarity, query_pids, gallery_pids,
                                  (1, ), chunk_size, keep_details=True,
                                  keep_topk=keep_topk)
    return accumulator.details()


def _rank_in_chunks(similarity: ArrayLike,
                    query_pids: ArrayLike,
                    gallery_pids: ArrayLike,
                    topk: Sequence[int],
                    chunk_size: int,
                    keep_details: bool = False,
                    keep_topk: int = 10) -> RankAccumulator:
    """Validate the inputs of :func:`rank` and rank them chunk by chunk."""
    chunk_size = check_chunk_size(chunk_size)
    similarity = check_similarity(similarity)
    num_queries, num_gallery = similarity.shape
    query_pids = check_pids(query_pids, 'query_pids', num_queries,
                            'queries, similarity.shape[0]')
    gallery_pids = check_pids(gallery_pids, 'gallery_pids', num_gallery,
                              'gallery items, similarity.shape[1]')
    chunks = (similarity[start:end]
              for start, end in row_chunks(num_queries, chunk_size))
    return rank_chunks(chunks, query_pids, gallery_pids, topk,
                       keep_details, keep_topk)
