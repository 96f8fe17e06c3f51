"""The warm-up + cosine learning-rate schedule of IRRA, UP-Person and
DM-Adapter, in closed form."""
import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import (
    INF,
    OptimizerType,
    _ParamScheduler,
)

from mmtpr.registry import PARAM_SCHEDULERS


class WarmupCosineParamScheduler(_ParamScheduler):
    """Linear warm-up from ``warmup_factor`` then cosine decay to
    ``eta_min_ratio``, as IRRA's ``LRSchedulerWithWarmup``
    (docs/methods.md §0.8).

    With ``s`` the 0-based step (epoch) index, ``W = warmup_steps`` and
    ``T = total_steps``::

        s <  W: factor = warmup_factor * (1 - s / W) + s / W
        s >= W: factor = r + (1 - r) * (1 + cos(pi * (s - W) / (T - W))) / 2

    where ``r = eta_min_ratio``; value = base value * factor. With the
    papers' W=5, T=60: 0.10, 0.28, 0.46, 0.64, 0.82, then 1.0 at the sixth
    epoch down to 0.0008 at the sixtieth. MMEngine's LinearLR +
    CosineAnnealingLR cannot express this exactly (LinearLR reaches its end
    factor one step early and the chained cosine starts from there).

    Args:
        optimizer (Optimizer or OptimWrapper): the wrapped optimizer.
        param_name (str): the scheduled hyper-parameter.
        warmup_steps (int): Defaults to 5.
        warmup_factor (float): first warm-up factor. Defaults to 0.1.
        total_steps (int): the step at which the cosine reaches its minimum.
            Defaults to 60.
        eta_min_ratio (float): final factor. Defaults to 0.
        begin, end, last_step, by_epoch, verbose: as MMEngine's schedulers.
    """

    def __init__(self,
                 optimizer: OptimizerType,
                 param_name: str,
                 warmup_steps: int = 5,
                 warmup_factor: float = 0.1,
                 total_steps: int = 60,
                 eta_min_ratio: float = 0.0,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if not 0 <= warmup_steps < total_steps:
            raise ValueError('need 0 <= warmup_steps < total_steps, got '
                             f'{warmup_steps} and {total_steps}')
        self.warmup_steps = warmup_steps
        self.warmup_factor = warmup_factor
        self.total_steps = total_steps
        self.eta_min_ratio = eta_min_ratio
        super().__init__(
            optimizer,
            param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls, *args, warmup_steps: int = 5,
                              total_steps: int = 60, begin: int = 0,
                              end: int = INF, by_epoch: bool = True,
                              epoch_length: int = None, **kwargs):
        """Build an iteration-based schedule from epoch-based arguments
        (``convert_to_iter_based=True``)."""
        if not by_epoch:
            raise ValueError('convert_to_iter_based needs by_epoch=True')
        if epoch_length is None or epoch_length <= 0:
            raise ValueError(f'epoch_length must be > 0, got {epoch_length}')
        return cls(
            *args,
            warmup_steps=warmup_steps * epoch_length,
            total_steps=total_steps * epoch_length,
            begin=begin * epoch_length,
            end=end * epoch_length if end != INF else end,
            by_epoch=False,
            **kwargs)

    def factor(self, step: int) -> float:
        """The multiplier of the base value at 0-based ``step``."""
        if step < self.warmup_steps:
            alpha = step / self.warmup_steps
            return self.warmup_factor * (1 - alpha) + alpha
        progress = min(step - self.warmup_steps,
                       self.total_steps - self.warmup_steps)
        cosine = (1 + math.cos(math.pi * progress /
                               (self.total_steps - self.warmup_steps))) / 2
        return self.eta_min_ratio + (1 - self.eta_min_ratio) * cosine

    def _get_value(self):
        factor = self.factor(self.last_step)
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(LRSchedulerMixin, WarmupCosineParamScheduler):
    """The learning-rate version of :class:`WarmupCosineParamScheduler`.

    Example:
        >>> param_scheduler = dict(type='WarmupCosineLR', warmup_steps=5,
        ...                        warmup_factor=0.1, total_steps=60,
        ...                        by_epoch=True)
    """
