from .rank import rank, rank_per_query

__all__ = ['rank', 'rank_per_query']
