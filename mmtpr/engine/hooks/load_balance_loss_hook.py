"""Monitor the routing of sparse mixtures of adapters (DM-Adapter) and
schedule the weight of their load-balancing loss."""
import bisect
import math
import re
from numbers import Real
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtpr.models.petl.moa import MixtureOfAdapters
from mmtpr.registry import HOOKS

DATA_BATCH = Optional[dict]

# `...visual.transformer.resblocks.3.branch_mlp` is the visual tower, block
# 3; `...transformer.resblocks.5.branch_mlp` (no `visual.`) the text tower.
_BLOCK = re.compile(r'(?:^|\.)(visual\.)?transformer\.resblocks\.(\d+)'
                    r'(?:\.|$)')

_SCHEDULE_KEYS = {
    'linear': ({'type', 'start', 'end', 'end_iter'}, {'begin_iter'}),
    'step': ({'type', 'values', 'milestones'}, set()),
}


def _number(schedule: dict, key: str) -> float:
    value = schedule[key]
    if isinstance(value, bool) or not isinstance(value, Real) or \
            not math.isfinite(value) or value < 0:
        raise ValueError(f'weight_schedule: {key} must be a finite number '
                         f'>= 0, got {value!r}')
    return float(value)


def _iteration(schedule: dict, key: str, value=None) -> int:
    value = schedule[key] if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'weight_schedule: {key} must be an int >= 0 (an '
                         f'iteration), got {value!r}')
    return value


def build_weight_schedule(schedule: dict) -> Callable[[int], float]:
    """Check an iteration-based loss-weight schedule and return it as a
    function ``iteration (0-based) -> weight``.

    - ``dict(type='linear', start, end, end_iter, begin_iter=0)``: ``start``
      up to ``begin_iter``, linear in between, ``end`` from ``end_iter`` on.
    - ``dict(type='step', values, milestones)``: ``values[i]`` from
      ``milestones[i - 1]`` (included) to ``milestones[i]`` (excluded), like
      MMEngine's ``MultiStepLR``; ``len(values) == len(milestones) + 1``.
    """
    if not isinstance(schedule, dict):
        raise TypeError(f'weight_schedule must be None or a dict, got '
                        f'{type(schedule).__name__}')
    kind = schedule.get('type')
    if kind not in _SCHEDULE_KEYS:
        raise ValueError(f'weight_schedule: unknown type {kind!r}; expected '
                         f'one of {sorted(_SCHEDULE_KEYS)}')
    required, optional = _SCHEDULE_KEYS[kind]
    missing = required - set(schedule)
    unknown = set(schedule) - required - optional
    if missing or unknown:
        raise ValueError(
            f'weight_schedule of type {kind!r} needs the keys '
            f'{sorted(required - {"type"})} (optional: {sorted(optional)}); '
            f'missing {sorted(missing)}, unknown {sorted(unknown)}')
    if kind == 'linear':
        start, end = _number(schedule, 'start'), _number(schedule, 'end')
        begin_iter = _iteration(schedule, 'begin_iter',
                                schedule.get('begin_iter', 0))
        end_iter = _iteration(schedule, 'end_iter')
        if end_iter <= begin_iter:
            raise ValueError(f'weight_schedule: end_iter ({end_iter}) must '
                             f'be greater than begin_iter ({begin_iter})')

        def linear(it: int) -> float:
            if it <= begin_iter:
                return start
            if it >= end_iter:
                return end
            return start + (end - start) * (it - begin_iter) / (
                end_iter - begin_iter)

        return linear

    values, milestones = schedule['values'], schedule['milestones']
    if not isinstance(values, (list, tuple)) or \
            not isinstance(milestones, (list, tuple)):
        raise ValueError('weight_schedule: values and milestones must be '
                         'lists')
    values = [_number(dict(values=v), 'values') for v in values]
    milestones = [_iteration(schedule, 'milestones', m) for m in milestones]
    if len(values) != len(milestones) + 1:
        raise ValueError(f'weight_schedule: {len(milestones)} milestones '
                         f'need {len(milestones) + 1} values, got '
                         f'{len(values)}')
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise ValueError(f'weight_schedule: milestones must be strictly '
                         f'increasing, got {milestones}')

    def step(it: int) -> float:
        return values[bisect.bisect_right(milestones, it)]

    return step


def _label(name: str) -> Tuple[str, str]:
    """Module name -> (tower, layer), e.g. ('visual', '3')."""
    match = _BLOCK.search(name)
    if match is None:
        return 'other', name.replace('.', '_')
    return ('visual' if match.group(1) else 'text'), match.group(2)


@HOOKS.register_module()
class LoadBalanceLossHook(Hook):
    """Log the routing of every :class:`MixtureOfAdapters`, warn on routing
    collapse and schedule the weight of the load-balancing loss.

    Every ``interval`` training iterations, for each MixtureOfAdapters of
    the model (tower and block read from its module name) the hook logs to
    the message hub, so that :class:`LoggerHook` prints them and the
    visualizer records them:

    - ``train/moa/{tower}_{layer}/expert{e}``: the share of the
      token->expert assignments that expert ``e`` received (the experts of
      a layer sum to 1; 1 / E is perfect balance);
    - ``train/moa/{tower}_{layer}/entropy``: the mean router entropy over
      the tokens;
    - ``train/moa/{tower}/entropy_mean`` and ``train/moa/{tower}/
      min_fraction``: per tower, the mean of the layers' entropies and the
      smallest expert share of all its layers.

    The same scalars (without the ``train/`` prefix, as LoggerHook names
    them) are also written to ``runner.visualizer`` at ``step = iter + 1``.
    Statistics are those of the last training forward, averaged over the
    ranks in distributed training.

    An expert whose share stays below ``collapse_threshold`` for
    ``collapse_patience`` consecutive checks triggers one warning naming the
    tower, layer and expert; it warns again only after the expert recovered
    (a check at or above the threshold) and collapsed again. The counters
    are not saved in checkpoints.

    ``weight_schedule`` sets ``model.aux_loss.loss_weight`` (see
    :class:`LoadBalanceLoss`) before every training iteration from the
    0-based iteration index and logs it as ``train/lb_weight``:

    - ``dict(type='linear', start=0.0, end=0.5, begin_iter=0,
      end_iter=1000)``: ``start`` until ``begin_iter``, linear in between,
      ``end`` from ``end_iter`` on;
    - ``dict(type='step', values=[0.5, 0.1], milestones=[1000])``:
      ``values[i]`` from ``milestones[i - 1]`` (included) on.

    The schedule is a function of the iteration only, so it resumes
    correctly.

    The default priority is ``'NORMAL'``: ``after_train_iter`` runs after
    the optimizer step whatever the priority, and NORMAL places it before
    :class:`LoggerHook` (``'BELOW_NORMAL'``), so the line logged at an
    iteration carries the statistics of that same iteration.

    Args:
        interval (int): log and check the routing every ``interval``
            training iterations. Defaults to 50.
        weight_schedule (dict, optional): the loss-weight schedule. None
            keeps the config's ``loss_weight``. Defaults to None.
        collapse_threshold (float): an expert's share below this counts as
            collapsed; 0 disables the warning. Defaults to 0.01.
        collapse_patience (int): consecutive collapsed checks before
            warning. Defaults to 5.
        log_per_layer (bool): put the per-layer scalars in the message hub
            (printed in the text log). False keeps only the per-tower
            scalars there; the visualizer still gets every scalar.
            Defaults to True.

    Example:
        >>> custom_hooks = [dict(type='LoadBalanceLossHook', interval=50)]
        >>> # warm the load-balancing weight up from 0 to 0.5
        >>> custom_hooks = [
        ...     dict(type='LoadBalanceLossHook', interval=50,
        ...          weight_schedule=dict(type='linear', start=0.0,
        ...                               end=0.5, end_iter=1000))]
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 50,
                 weight_schedule: Optional[dict] = None,
                 collapse_threshold: float = 0.01,
                 collapse_patience: int = 5,
                 log_per_layer: bool = True) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or \
                interval < 1:
            raise ValueError(f'interval must be an int >= 1, got '
                             f'{interval!r}')
        if isinstance(collapse_patience, bool) or \
                not isinstance(collapse_patience, int) or \
                collapse_patience < 1:
            raise ValueError(f'collapse_patience must be an int >= 1, got '
                             f'{collapse_patience!r}')
        if not 0 <= collapse_threshold <= 1:
            raise ValueError(f'collapse_threshold must be in [0, 1], got '
                             f'{collapse_threshold!r}')
        self.interval = interval
        self.weight_schedule = weight_schedule
        self._schedule = None if weight_schedule is None else \
            build_weight_schedule(weight_schedule)
        self.collapse_threshold = float(collapse_threshold)
        self.collapse_patience = collapse_patience
        self.log_per_layer = log_per_layer
        # (module name, tower, layer, module), in model order
        self._routers: Optional[List[Tuple[str, str, str,
                                           MixtureOfAdapters]]] = None
        # (tower, layer, expert) -> (consecutive low checks, first step)
        self._low: Dict[Tuple[str, str, int], Tuple[int, int]] = {}

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _setup(self, runner) -> None:
        model = self._model(runner)
        if self._schedule is not None:
            aux_loss = getattr(model, 'aux_loss', None)
            if aux_loss is None or not hasattr(aux_loss, 'loss_weight'):
                raise ValueError(
                    'LoadBalanceLossHook: weight_schedule is set but the '
                    'model has no aux_loss with a loss_weight; set e.g. '
                    "model.aux_loss = dict(type='LoadBalanceLoss', "
                    'loss_weight=0.5) or drop weight_schedule')
        routers, seen = [], set()
        for name, module in model.named_modules():
            if isinstance(module, MixtureOfAdapters):
                tower, layer = _label(name)
                if (tower, layer) in seen:  # two routers in one block
                    layer = f'{layer}_{name.rsplit(".", 1)[-1]}'
                seen.add((tower, layer))
                routers.append((name, tower, layer, module))
        if not routers:
            runner.logger.warning(
                'LoadBalanceLossHook: the model has no MixtureOfAdapters; '
                'no routing statistics will be logged')
        self._routers = routers

    def before_train(self, runner) -> None:
        self._setup(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        if self._schedule is None:
            return
        if self._routers is None:
            self._setup(runner)
        weight = self._schedule(runner.iter)
        self._model(runner).aux_loss.loss_weight = weight
        runner.message_hub.update_scalar('train/lb_weight', weight)

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        if self._routers is None:
            self._setup(runner)
        stats = self.routing_stats()
        if not stats:
            return
        self._log(runner, stats)
        self._check_collapse(runner, stats)

    def routing_stats(self) -> List[Tuple[str, str, str, List[float],
                                          float]]:
        """``(name, tower, layer, fractions, entropy)`` of every router that
        has routed since it was built, averaged over the ranks (one
        transfer and one all-reduce for all of them)."""
        found = [(name, tower, layer, module.routing)
                 for name, tower, layer, module in self._routers
                 if module.routing]
        if not found:
            return []
        device = found[0][3]['fraction'].device
        flat = torch.cat([
            torch.cat([routing['fraction'].detach().float().reshape(-1),
                       routing['entropy'].detach().float().reshape(1)]).to(
                           device) for *_, routing in found])
        all_reduce(flat, op='mean')  # no-op outside distributed training
        flat = flat.cpu().tolist()
        stats, start = [], 0
        for name, tower, layer, routing in found:
            n = routing['fraction'].numel()
            stats.append((name, tower, layer, flat[start:start + n],
                          flat[start + n]))
            start += n + 1
        return stats

    def _log(self, runner, stats) -> None:
        layer_scalars, tower_entropy, tower_min = {}, {}, {}
        for _, tower, layer, fractions, entropy in stats:
            for e, fraction in enumerate(fractions):
                layer_scalars[f'moa/{tower}_{layer}/expert{e}'] = fraction
            layer_scalars[f'moa/{tower}_{layer}/entropy'] = entropy
            tower_entropy.setdefault(tower, []).append(entropy)
            tower_min[tower] = min(tower_min.get(tower, math.inf),
                                   min(fractions))
        tower_scalars = {}
        for tower, entropies in tower_entropy.items():
            tower_scalars[f'moa/{tower}/entropy_mean'] = \
                sum(entropies) / len(entropies)
            tower_scalars[f'moa/{tower}/min_fraction'] = tower_min[tower]
        hub = dict(tower_scalars)
        if self.log_per_layer:
            hub.update(layer_scalars)
        for key, value in hub.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
        runner.visualizer.add_scalars({**layer_scalars, **tower_scalars},
                                      step=runner.iter + 1)

    def _check_collapse(self, runner, stats) -> None:
        step = runner.iter + 1
        for name, tower, layer, fractions, _ in stats:
            for e, fraction in enumerate(fractions):
                key = (tower, layer, e)
                if fraction >= self.collapse_threshold:
                    self._low.pop(key, None)  # recovered
                    continue
                count, first = self._low.get(key, (0, step))
                count += 1
                self._low[key] = (count, first)
                if count == self.collapse_patience:
                    runner.logger.warning(
                        f'LoadBalanceLossHook: routing collapse in the '
                        f'{tower} tower, layer {layer} ({name}): expert {e} '
                        f'received {fraction:.4f} of the token assignments, '
                        f'below collapse_threshold='
                        f'{self.collapse_threshold}, for '
                        f'{count * self.interval} iterations ({count} '
                        f'consecutive checks, iterations {first}-{step})')
