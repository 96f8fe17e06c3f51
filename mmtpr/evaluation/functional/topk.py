"""Top-k under the order (-score, index): equal scores rank by ascending
index, including at the k-th place.

``torch.topk`` does not promise which of several entries tied for the
k-th place it returns, nor their order (on the CPU it does not return the
lowest index first). The functions here do, so that a top-k agrees with
the stable sort the ranking metrics are defined by; they are shared by
:func:`mmtpr.evaluation.rank_per_query`, :class:`mmtpr.evaluation.TPRMetric`
and :class:`mmtpr.apis.ExactIndex`.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def sort_by_score_then_index(scores: Tensor,
                             indices: Tensor) -> Tuple[Tensor, Tensor]:
    """Sort each row by decreasing score, equal scores by increasing index.

    Args:
        scores (Tensor): Scores, shape (n, m), without NaN.
        indices (Tensor): The index of each score, shape (n, m), int64,
            distinct within a row.

    Returns:
        tuple[Tensor, Tensor]: The sorted scores and their indices, both
        of shape (n, m).
    """
    indices, order = indices.sort(dim=1)
    scores = scores.gather(1, order)
    scores, order = scores.sort(dim=1, descending=True, stable=True)
    return scores, indices.gather(1, order)


def _best_columns(scores: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """The ``k < G`` best columns of each row of ``scores`` (n, G) under
    the order (-score, column), in no particular order.

    ``torch.topk`` is asked for ``k + 1`` values: where the (k+1)-th is
    below the k-th, no tie crosses the cut and its first ``k`` columns are
    the answer. Only the other rows are redone: all columns above the k-th
    score, then the lowest columns equal to it.
    """
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


def topk_by_score_then_index(
        scores: Tensor,
        k: int,
        indices: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The ``k`` best entries of each row under the order (-score, index).

    Entries rank by decreasing score, equal scores by increasing index,
    which is also the rule for the k-th place: of several entries tied
    there, those with the lowest indices are kept. The result is the head
    of a stable descending sort of each row, without sorting whole rows
    when ``indices`` is None.

    Args:
        scores (Tensor): Scores, shape (n, m), on any device, without NaN.
        k (int): How many entries to keep per row, at least 1; ``min(k,
            m)`` are returned.
        indices (Tensor, optional): The index of each score, shape (n, m),
            int64, distinct within a row (e.g. gallery rows of candidates
            to merge). Defaults to None, i.e. the column index.

    Returns:
        tuple[Tensor, Tensor]: ``(values, indices)``, both of shape
        ``(n, min(k, m))``, best first: the scores (dtype of ``scores``)
        and their indices (int64).

    Example:
        >>> scores = torch.tensor([[0.5, 0.9, 0.5, 0.5]])
        >>> topk_by_score_then_index(scores, 3)
        (tensor([[0.9000, 0.5000, 0.5000]]), tensor([[1, 0, 2]]))
    """
    num_rows, num_cols = scores.shape
    if indices is not None:
        values, indices = sort_by_score_then_index(scores, indices)
        return values[:, :k], indices[:, :k]
    if k >= num_cols:
        cols = torch.arange(num_cols, device=scores.device)
        return sort_by_score_then_index(
            scores, cols.expand(num_rows, num_cols))
    values, cols = _best_columns(scores, k)
    return sort_by_score_then_index(values, cols)
