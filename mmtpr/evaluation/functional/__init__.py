from .rank import rank

__all__ = ['rank']
