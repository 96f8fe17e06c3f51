from .tpr_metric import TPRMetric

__all__ = ['TPRMetric']
