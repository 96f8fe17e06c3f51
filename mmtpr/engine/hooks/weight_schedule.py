"""Loss-weight schedules: a weight as a function of the training
iteration, checked when built."""
import bisect
import math
from numbers import Real
from typing import Callable

from mmtpr.utils.errors import ConfigError

_SCHEDULE_KEYS = {
    'linear': ({'type', 'start', 'end', 'end_iter'}, {'begin_iter'}),
    'step': ({'type', 'values', 'milestones'}, set()),
}


def _number(schedule: dict, key: str) -> float:
    value = schedule[key]
    if isinstance(value, bool) or not isinstance(value, Real) or \
            not math.isfinite(value) or value < 0:
        raise ConfigError(f'weight_schedule: {key} must be a finite number '
                         f'>= 0, got {value!r}')
    return float(value)


def _iteration(schedule: dict, key: str, value=None) -> int:
    value = schedule[key] if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f'weight_schedule: {key} must be an int >= 0 (an '
                         f'iteration), got {value!r}')
    return value


def _linear(schedule: dict) -> Callable[[int], float]:
    start, end = _number(schedule, 'start'), _number(schedule, 'end')
    begin_iter = _iteration(schedule, 'begin_iter',
                            schedule.get('begin_iter', 0))
    end_iter = _iteration(schedule, 'end_iter')
    if end_iter <= begin_iter:
        raise ConfigError(f'weight_schedule: end_iter ({end_iter}) must be '
                          f'greater than begin_iter ({begin_iter})')

    def linear(it: int) -> float:
        if it <= begin_iter:
            return start
        if it >= end_iter:
            return end
        return start + (end - start) * (it - begin_iter) / (
            end_iter - begin_iter)

    return linear


def _step(schedule: dict) -> Callable[[int], float]:
    values, milestones = schedule['values'], schedule['milestones']
    if not isinstance(values, (list, tuple)) or \
            not isinstance(milestones, (list, tuple)):
        raise ConfigError('weight_schedule: values and milestones must be '
                          'lists')
    values = [_number(dict(values=v), 'values') for v in values]
    milestones = [_iteration(schedule, 'milestones', m) for m in milestones]
    if len(values) != len(milestones) + 1:
        raise ConfigError(f'weight_schedule: {len(milestones)} milestones '
                          f'need {len(milestones) + 1} values, got '
                          f'{len(values)}')
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise ConfigError('weight_schedule: milestones must be strictly '
                          f'increasing, got {milestones}')

    def step(it: int) -> float:
        return values[bisect.bisect_right(milestones, it)]

    return step


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
        raise ConfigError('weight_schedule must be None or a dict, got '
                          f'{type(schedule).__name__}')
    kind = schedule.get('type')
    if kind not in _SCHEDULE_KEYS:
        raise ConfigError(f'weight_schedule: unknown type {kind!r}; '
                          f'expected one of {sorted(_SCHEDULE_KEYS)}')
    required, optional = _SCHEDULE_KEYS[kind]
    missing = required - set(schedule)
    unknown = set(schedule) - required - optional
    if missing or unknown:
        raise ConfigError(
            f'weight_schedule of type {kind!r} needs the keys '
            f'{sorted(required - {"type"})} (optional: {sorted(optional)}); '
            f'missing {sorted(missing)}, unknown {sorted(unknown)}')
    return _linear(schedule) if kind == 'linear' else _step(schedule)
