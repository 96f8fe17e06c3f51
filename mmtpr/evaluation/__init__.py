from .functional import rank, rank_per_query
from .metrics import TPRMetric

__all__ = ['rank', 'rank_per_query', 'TPRMetric']
