"""What a checkpoint records about the model it was saved from.

A state dict cannot tell everything that shapes a model's output: a
mixture of adapters with ``top_k=1`` has the same tensors as one with
``top_k=2``, and a PETL-only checkpoint holds no positional embedding that
would reveal another ``image_size``. mmtpr's runner therefore writes the
model's config into every checkpoint (``meta['mmtpr_model']``, plain JSON
data: it is compared, never executed) and compares it with the config that
loads the checkpoint.

Run-level settings that do not change what the model computes are left
out: where the pretrained weights are (``pretrained``), the storage
precision of the frozen weights (``frozen_dtype``) and ``init_cfg``.
"""
from typing import Any, Dict, List, Optional

#: keys (at any depth) that are not part of the model's identity
RUN_LEVEL_KEYS = ('pretrained', 'frozen_dtype', 'init_cfg')
META_KEY = 'mmtpr_model'


def _plain(value: Any) -> Any:
    """JSON-like data: dicts with str keys, lists, str/int/float/bool/None;
    classes and functions by their qualified name."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(
            value.items(), key=lambda item: str(item[0]))
            if str(k) not in RUN_LEVEL_KEYS}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, type) or callable(value):
        return f'{value.__module__}.{value.__qualname__}'
    return repr(value)


def model_record(model_cfg: Any) -> Dict[str, Any]:
    """The record of ``model_cfg`` (a config dict of a model) that a
    checkpoint keeps."""
    record = _plain(model_cfg)
    if not isinstance(record, dict):
        raise TypeError(f'model config must be a dict, got {model_cfg!r}')
    return record


def _differences(saved: Any, current: Any, path: str,
                 out: List[str]) -> None:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            where = f'{path}.{key}' if path else key
            if key not in saved:
                out.append(f'{where}: absent in the checkpoint, '
                           f'{current[key]!r} in the config')
            elif key not in current:
                out.append(f'{where}: {saved[key]!r} in the checkpoint, '
                           'absent in the config')
            else:
                _differences(saved[key], current[key], where, out)
    elif isinstance(saved, list) and isinstance(current, list) and \
            len(saved) == len(current):
        for i, (a, b) in enumerate(zip(saved, current)):
            _differences(a, b, f'{path}[{i}]', out)
    elif saved != current:
        out.append(f'{path}: {saved!r} in the checkpoint, {current!r} in '
                   'the config')


def record_differences(saved: Dict[str, Any], current: Dict[str, Any],
                       part: Optional[str] = None) -> List[str]:
    """How two model records differ (``part``: only that top-level key,
    e.g. 'backbone'), as lines 'key: X in the checkpoint, Y in the
    config'; empty if they agree."""
    if part is not None:
        saved = {part: saved.get(part)}
        current = {part: current.get(part)}
    out: List[str] = []
    _differences(saved, current, '', out)
    return out
