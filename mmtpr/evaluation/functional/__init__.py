from .checks import (
    check_chunk_size,
    check_has_positives,
    check_keep_topk,
    check_pids,
    check_positive_int,
    check_topk,
)
from .positives import GalleryPositives, positive_ranks
from .rank import rank, rank_per_query
from .ranking import RankAccumulator, rank_chunks, rank_features
from .topk import sort_by_score_then_index, topk_by_score_then_index

__all__ = [
    'GalleryPositives', 'RankAccumulator', 'check_chunk_size',
    'check_has_positives', 'check_keep_topk', 'check_pids',
    'check_positive_int', 'check_topk', 'positive_ranks', 'rank',
    'rank_chunks', 'rank_features', 'rank_per_query',
    'sort_by_score_then_index', 'topk_by_score_then_index'
]
