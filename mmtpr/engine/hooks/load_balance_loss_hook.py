"""A hook for DM-Adapter's load balancing: it monitors the routing of the
mixtures of adapters (:mod:`.routing_monitor`) and schedules the weight of
their load-balancing loss (:mod:`.weight_schedule`)."""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtpr.registry import HOOKS
from mmtpr.utils.errors import ConfigError

from .routing_monitor import (
    CollapseDetector,
    Router,
    find_routers,
    routing_scalars,
    routing_stats,
)
from .weight_schedule import build_weight_schedule

DATA_BATCH = Optional[dict]


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

    :class:`LoggerHook` sends the message hub's scalars to
    ``runner.visualizer`` (TensorBoard, W&B, ...) without the ``train/``
    prefix; with ``log_per_layer=False`` the per-layer scalars, kept out of
    the text log, are written to the visualizer directly at ``step = iter +
    1``.
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
            raise ConfigError(f'interval must be an int >= 1, got '
                             f'{interval!r}')
        if isinstance(collapse_patience, bool) or \
                not isinstance(collapse_patience, int) or \
                collapse_patience < 1:
            raise ConfigError(f'collapse_patience must be an int >= 1, got '
                             f'{collapse_patience!r}')
        if not 0 <= collapse_threshold <= 1:
            raise ConfigError(f'collapse_threshold must be in [0, 1], got '
                             f'{collapse_threshold!r}')
        self.interval = interval
        self.weight_schedule = weight_schedule
        self._schedule = None if weight_schedule is None else \
            build_weight_schedule(weight_schedule)
        self.collapse_threshold = float(collapse_threshold)
        self.collapse_patience = collapse_patience
        self.log_per_layer = log_per_layer
        self._routers: Optional[List[Router]] = None
        self._collapse = CollapseDetector(self.collapse_threshold,
                                          collapse_patience, interval)

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _setup(self, runner) -> None:
        model = self._model(runner)
        if self._schedule is not None:
            aux_loss = getattr(model, 'aux_loss', None)
            if aux_loss is None or not hasattr(aux_loss, 'loss_weight'):
                raise ConfigError(
                    'LoadBalanceLossHook: weight_schedule is set but the '
                    'model has no aux_loss with a loss_weight; set e.g. '
                    "model.aux_loss = dict(type='LoadBalanceLoss', "
                    'loss_weight=0.5) or drop weight_schedule')
        routers = find_routers(model)
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
        stats = routing_stats(self._routers)
        if not stats:
            return
        layer_scalars, tower_scalars = routing_scalars(stats)
        hub = dict(tower_scalars)
        if self.log_per_layer:
            hub.update(layer_scalars)
        # LoggerHook prints the message hub's scalars and sends them to the
        # visualizer (TensorBoard, ...); the per-layer ones kept out of the
        # text log go to the visualizer directly
        for key, value in hub.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
        if not self.log_per_layer:
            runner.visualizer.add_scalars(layer_scalars,
                                          step=runner.iter + 1)
        for message in self._collapse.update(runner.iter + 1, stats):
            runner.logger.warning(f'LoadBalanceLossHook: {message}')

