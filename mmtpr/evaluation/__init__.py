from .functional import rank
from .metrics import TPRMetric

__all__ = ['rank', 'TPRMetric']
