"""MMEngine's optimizer constructor with a one-line summary instead of one
log line per parameter."""
import logging
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

import torch.nn as nn
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from mmtpr.registry import OPTIM_WRAPPER_CONSTRUCTORS

# MMEngine logs these once per parameter (about 590 lines for ViT-B/16).
_PER_PARAMETER = ('paramwise_options -- ', 'is skipped since its '
                  'requires_grad=False')


class _DropPerParameterLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in _PER_PARAMETER)


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    quiet = _DropPerParameterLines()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TPROptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """:class:`~mmengine.optim.DefaultOptimWrapperConstructor`, quiet.

    The default constructor logs one line per parameter when
    ``paramwise_cfg`` is set (its options, or that a frozen parameter is
    skipped): about 590 lines for a PETL model on ViT-B/16. This one builds
    the same optimizer and logs one summary line instead: the trainable
    and frozen parameter counts and, per distinct (lr, weight decay), how
    many parameters train with it.

    Example:
        >>> optim_wrapper = dict(
        ...     constructor='TPROptimWrapperConstructor',
        ...     optimizer=dict(type='Adam', lr=1e-3),
        ...     paramwise_cfg=dict(custom_keys={'bias': dict(
        ...         decay_mult=0.0)}))
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        with _quiet(MMLogger.get_current_instance()):
            optim_wrapper = super().__call__(model)
        print_log(summarize_param_groups(optim_wrapper.optimizer, model),
                  logger='current')
        return optim_wrapper


def summarize_param_groups(optimizer, model: nn.Module) -> str:
    """One line: the trainable and frozen parameters of ``model`` and the
    (lr, weight decay) groups in which ``optimizer`` trains them."""
    model = getattr(model, 'module', model)
    trainable = 0
    groups: OrderedDict[tuple, int] = OrderedDict()
    for group in optimizer.param_groups:
        for param in group['params']:
            if not param.requires_grad:
                continue
            trainable += param.numel()
            key = (group.get('lr'), group.get('weight_decay', 0.0))
            groups[key] = groups.get(key, 0) + param.numel()
    parts = ', '.join(f'{count:,} at lr={lr:g} wd={wd:g}'
                      for (lr, wd), count in groups.items())
    total = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.parameters()
                 if not p.requires_grad)
    share = 100.0 * trainable / total if total else 0.0
    return (f'optimizer {type(optimizer).__name__}: {trainable:,} trainable '
            f'parameters ({share:.2f} % of {total:,}; {frozen:,} frozen): '
            f'{parts or "none"}')
