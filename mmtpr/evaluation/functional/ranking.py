"""The chunked ranking core shared by :func:`rank`, :func:`rank_per_query`
and :class:`mmtpr.evaluation.TPRMetric`.

Queries are ranked a chunk of rows at a time by a :class:`RankAccumulator`,
so that the full ``(Q, G)`` similarity never has to exist at once:
:func:`rank_chunks` feeds it successive chunks of scores and
:func:`rank_features` computes each chunk from features on the fly (both
retrieval directions are the same call with the roles swapped).
"""
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .checks import (
    ArrayLike,
    check_chunk_size,
    check_has_positives,
    check_keep_topk,
    check_no_nan,
    check_pids,
    check_topk,
    to_tensor,
)
from .positives import GalleryPositives, positive_ranks
from .topk import topk_by_score_then_index

# The per-query results kept by RankAccumulator(keep_details=True).
DETAIL_KEYS = ('ap', 'inp', 'first_match_rank', 'topk_indices',
               'topk_scores')


class RankAccumulator:
    """Accumulate R@k, AP and INP over chunks of queries.

    Each chunk is ranked on its own device with the tie rule of
    :func:`rank` (equal scores rank by ascending gallery index), from the
    ranks of the queries' positives only (see
    :func:`~mmtpr.evaluation.functional.positives.positive_ranks`).
    AP and INP are accumulated in float64.

    With ``keep_details=True`` it also keeps, per query, AP, INP, the
    0-based rank of the first positive and the ``keep_topk`` best gallery
    indices and scores (see :meth:`details`), chosen by
    :func:`topk_by_score_then_index` with the same tie rule as the ranks.
    This costs O(Q * keep_topk) memory beyond the per-chunk temporaries.

    Args:
        gallery_pids (Tensor): Gallery person ids, shape (G, ), int64.
        topk (Sequence[int]): The cut-offs of R@k, checked with
            :func:`check_topk`.
        keep_details (bool): Keep the per-query results.
            Defaults to False.
        keep_topk (int): How many gallery items to keep per query when
            ``keep_details``; ``min(keep_topk, G)`` are kept.
            Defaults to 10.
    """

    def __init__(self,
                 gallery_pids: Tensor,
                 topk: Union[int, Sequence[int]],
                 keep_details: bool = False,
                 keep_topk: int = 10) -> None:
        self.gallery_pids = gallery_pids
        self.topk = check_topk(topk)
        self.num_queries = 0
        self.hits = [0] * len(self.topk)
        self.ap_sum = 0.0  # Python floats are float64.
        self.inp_sum = 0.0
        self.keep_details = keep_details
        self.keep_topk = min(check_keep_topk(keep_topk),
                             int(gallery_pids.numel()))
        self._gallery = GalleryPositives(gallery_pids)
        self._details: Dict[str, List[Tensor]] = {
            key: []
            for key in DETAIL_KEYS
        }

    def update(self, similarity: Tensor, query_pids: Tensor,
               offset: int = 0) -> None:
        """Rank one chunk of queries.

        Args:
            similarity (Tensor): Scores of the chunk, shape (n, G).
            query_pids (Tensor): Person ids of the chunk, shape (n, ),
                int64.
            offset (int): Index of the chunk's first query (for messages).
                Defaults to 0.

        Raises:
            ValueError: If the chunk holds NaN or a query has no positive.
        """
        if not similarity.dtype.is_floating_point:
            similarity = similarity.double()
        check_no_nan(similarity, offset)
        device = similarity.device
        gallery = self._gallery.to(device)
        query_pids = query_pids.to(device)
        num = similarity.shape[0]
        rows, ranks, num_pos = positive_ranks(similarity, query_pids,
                                              gallery, offset)
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
            top_scores, top_indices = topk_by_score_then_index(
                similarity, self.keep_topk)
            values = (ap, inp, first_rank, top_indices, top_scores)
            for key, value in zip(DETAIL_KEYS, values):
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


def _check_1d_pids(pids: ArrayLike, name: str, what: str) -> Tensor:
    """Check pids that set their own length (Q or G)."""
    pids = to_tensor(pids, name)
    # A 0-d tensor then fails as shape () instead of (1, ).
    return check_pids(pids, name, pids.shape[0] if pids.dim() else 1, what)


def rank_chunks(chunks: Iterable[Tensor],
                query_pids: ArrayLike,
                gallery_pids: ArrayLike,
                topk: Union[int, Sequence[int]] = (1, 5, 10),
                keep_details: bool = False,
                keep_topk: int = 10) -> RankAccumulator:
    """Rank successive chunks of query rows of a ``(Q, G)`` similarity.

    The person ids are checked, including that every query has a
    positive, before the first chunk is drawn, so that a bad input fails
    before any expensive scoring.

    Args:
        chunks (Iterable[Tensor]): Chunks of scores, shapes (n_i, G), in
            query order, with ``sum(n_i) = Q``; e.g. a generator that
            computes each chunk only when it is drawn.
        query_pids (Tensor | np.ndarray): Person ids of the queries,
            shape (Q, ).
        gallery_pids (Tensor | np.ndarray): Person ids of the gallery,
            shape (G, ).
        topk (int | Sequence[int]): The cut-offs k of R@k.
            Defaults to (1, 5, 10).
        keep_details (bool): Keep the per-query results.
            Defaults to False.
        keep_topk (int): Gallery items kept per query with
            ``keep_details``. Defaults to 10.

    Returns:
        RankAccumulator: Call :meth:`~RankAccumulator.summarize` for the
        metrics and :meth:`~RankAccumulator.details` for the per-query
        results.

    Raises:
        ValueError: If a chunk does not have G columns, if the chunks do
            not add up to Q rows, or for the reasons of :func:`rank`.
    """
    query_pids = _check_1d_pids(query_pids, 'query_pids', 'queries')
    gallery_pids = _check_1d_pids(gallery_pids, 'gallery_pids',
                                  'gallery items')
    check_has_positives(query_pids, gallery_pids)
    accumulator = RankAccumulator(gallery_pids, topk, keep_details,
                                  keep_topk)
    num_queries, num_gallery = len(query_pids), len(gallery_pids)
    offset = 0
    for chunk in chunks:
        end = offset + chunk.shape[0]
        if chunk.dim() != 2 or chunk.shape[1] != num_gallery \
                or end > num_queries:
            raise ValueError(
                f'A chunk of shape {tuple(chunk.shape)} at query {offset} '
                f'does not fit a ({num_queries}, {num_gallery}) '
                'similarity.')
        accumulator.update(chunk, query_pids[offset:end], offset=offset)
        offset = end
    if offset != num_queries:
        raise ValueError(f'The chunks hold {offset} query rows, but there '
                         f'are {num_queries} query person ids.')
    return accumulator


def row_chunks(num_rows: int, chunk_size: int) -> Iterator[Tuple[int, int]]:
    """``(start, end)`` of successive chunks of at most ``chunk_size`` rows.
    """
    chunk_size = check_chunk_size(chunk_size)
    for start in range(0, num_rows, chunk_size):
        yield start, min(start + chunk_size, num_rows)


def rank_features(queries: ArrayLike,
                  gallery: ArrayLike,
                  query_pids: ArrayLike,
                  gallery_pids: ArrayLike,
                  topk: Union[int, Sequence[int]] = (1, 5, 10),
                  chunk_size: int = 1024,
                  keep_details: bool = False,
                  keep_topk: int = 10) -> RankAccumulator:
    """Rank a gallery of features for query features, chunk by chunk.

    The similarity is the inner product ``queries @ gallery.T``
    (L2-normalise both sides first for the cosine similarity), computed
    ``chunk_size`` queries at a time on the device of the features and
    ranked as :func:`rank` does, so the full ``(Q, G)`` matrix never
    exists. For image-to-text retrieval pass the image features as
    ``queries`` and the caption features as ``gallery``.

    Args:
        queries (Tensor | np.ndarray): Query features, shape (Q, D).
        gallery (Tensor | np.ndarray): Gallery features, shape (G, D).
        query_pids (Tensor | np.ndarray): Person ids of the queries,
            shape (Q, ).
        gallery_pids (Tensor | np.ndarray): Person ids of the gallery,
            shape (G, ).
        topk (int | Sequence[int]): The cut-offs k of R@k.
            Defaults to (1, 5, 10).
        chunk_size (int): Number of queries scored and ranked at a time.
            Defaults to 1024.
        keep_details (bool): Keep the per-query results.
            Defaults to False.
        keep_topk (int): Gallery items kept per query with
            ``keep_details``. Defaults to 10.

    Returns:
        RankAccumulator: See :func:`rank_chunks`.

    Example:
        >>> import torch
        >>> feats = torch.eye(3)
        >>> acc = rank_features(feats, feats, [0, 1, 2], [0, 1, 2])
        >>> acc.summarize()['R1']
        100.0
    """
    queries = to_tensor(queries, 'queries')
    gallery = to_tensor(gallery, 'gallery')
    if queries.dim() != 2 or gallery.dim() != 2 \
            or queries.shape[1] != gallery.shape[1]:
        raise ValueError('`queries` and `gallery` must be 2-D with the same '
                         f'number of columns, got shapes '
                         f'{tuple(queries.shape)} and '
                         f'{tuple(gallery.shape)}.')
    query_pids = check_pids(query_pids, 'query_pids', queries.shape[0],
                            'queries, queries.shape[0]')
    gallery_pids = check_pids(gallery_pids, 'gallery_pids',
                              gallery.shape[0],
                              'gallery items, gallery.shape[0]')
    steps = list(row_chunks(queries.shape[0], chunk_size))
    chunks = (queries[start:end] @ gallery.T for start, end in steps)
    return rank_chunks(chunks, query_pids, gallery_pids, topk,
                       keep_details, keep_topk)
