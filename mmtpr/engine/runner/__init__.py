"""The runner and loops of mmtpr."""
from .loops import TPRTrainLoop
from .tpr_runner import TPRRunner

__all__ = ['TPRRunner', 'TPRTrainLoop']
