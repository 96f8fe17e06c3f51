"""Parameter schedulers of mmtpr."""
from .warmup_cosine_lr import WarmupCosineLR, WarmupCosineParamScheduler

__all__ = ['WarmupCosineLR', 'WarmupCosineParamScheduler']
