"""Loading MMEngine checkpoints with ``torch.load(weights_only=True)``.

MMEngine 0.10.7 loads checkpoints with a plain ``torch.load``; since torch 2.6
that defaults to ``weights_only=True``, which refuses the few Python objects
that MMEngine itself writes into every checkpoint (the message hub's
``HistoryBuffer`` objects and the numpy arrays and scalars inside them), so
``resume=True`` and ``load_from`` fail with ``UnpicklingError: Unsupported
global``. This module is the one place where mmtpr fixes that: it adds exactly
those globals to torch's allow-list, keeping ``weights_only=True`` so that a
tampered checkpoint still cannot run code.

``HistoryBuffer`` pickles its ``statistics_methods`` as
``getattr(HistoryBuffer, 'mean')`` and so on. Allowing ``builtins.getattr``
itself would defeat ``weights_only`` (``getattr`` reaches any module), so the
name ``builtins.getattr`` is mapped to :func:`_history_buffer_getattr`, which
only returns HistoryBuffer's own statistics methods.
"""
import pickle
from typing import Any, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# The statistics every HistoryBuffer instance registers for itself.
_DEFAULT_STATISTICS = ('min', 'max', 'mean', 'current')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to what a pickled HistoryBuffer refers to."""
    allowed = set(_DEFAULT_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer statistics methods may be looked up')


def _numpy_globals() -> List[Any]:
    # numpy 2 moved the pickled helpers from numpy.core to numpy._core;
    # checkpoints name whichever module wrote them.
    found = [np.ndarray, np.dtype]
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct'])
        except ImportError:
            continue
        for attr in ('_reconstruct', 'scalar'):
            fn = getattr(module, attr)
            found.append((fn, f'{module_name}.{attr}'))
    # numpy >= 1.25 may pickle dtypes through their classes
    # (e.g. numpy.dtypes.Float64DType).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found.extend(getattr(dtypes, name) for name in dir(dtypes)
                     if name.endswith('DType'))
    return found


def checkpoint_safe_globals() -> List[Any]:
    """The globals that MMEngine checkpoints need, for ``add_safe_globals``.

    Returns:
        list: objects and ``(object, 'module.name')`` pairs as accepted by
        :func:`torch.serialization.add_safe_globals`.
    """
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` read MMEngine checkpoints.

    Called once when :mod:`mmtpr` is imported; calling it again is harmless.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads with weights_only=False anyway
        return
    add(checkpoint_safe_globals())
