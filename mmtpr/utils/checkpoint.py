"""Reading checkpoint files safely, with errors that name the file and the
problem.

:func:`load_checkpoint_file` is the one reader of ``torch.save`` files in
mmtpr (checkpoints, exported models, gallery feature files). It always
passes ``weights_only=True`` to :func:`torch.load` explicitly, so that
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` changes nothing and a tampered file
cannot run code, and it allows, for that one call only, exactly the Python
objects that MMEngine writes into its checkpoints (nothing is added to
torch's process-wide allow-list; MMEngine's own loaders are untouched).

MMEngine 0.10.7 loads checkpoints with a plain ``torch.load``; since torch
2.6 that refuses the message hub's ``HistoryBuffer`` objects and the numpy
arrays and scalars inside them. :func:`checkpoint_safe_globals` lists them.
``HistoryBuffer`` pickles its ``statistics_methods`` as
``getattr(HistoryBuffer, 'mean')`` and so on; allowing ``builtins.getattr``
itself would defeat ``weights_only`` (``getattr`` reaches anything), so the
name ``builtins.getattr`` is mapped to :func:`_history_buffer_getattr`,
which only returns HistoryBuffer's own statistics methods.
"""
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .errors import CheckpointError
from .fileio import check_regular_file

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
            found.append((getattr(module, attr), f'{module_name}.{attr}'))
    # numpy >= 1.25 may pickle dtypes through their classes
    # (e.g. numpy.dtypes.Float64DType).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found.extend(getattr(dtypes, name) for name in dir(dtypes)
                     if name.endswith('DType'))
    return found


def checkpoint_safe_globals() -> List[Any]:
    """The globals that MMEngine checkpoints need, for
    :class:`torch.serialization.safe_globals`.

    Returns:
        list: objects and ``(object, 'module.name')`` pairs.
    """
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


class CorruptedCheckpointError(CheckpointError):
    """A checkpoint file exists but is empty, truncated or corrupted."""


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (e.g. OpenAI's
    ViT-B-16.pt): a zip holding the module's code under ``<name>/code/``,
    which plain ``torch.save`` zips do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any('/code/' in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _other_checkpoints(path: str, limit: int = 5) -> List[str]:
    """Other ``*.pth`` files beside ``path``, newest first."""
    directory = osp.dirname(osp.abspath(path))
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [osp.join(directory, name) for name in names
             if name.endswith('.pth') and not name.startswith('.')
             and osp.join(directory, name) != osp.abspath(path)]

    def mtime(p: str) -> float:
        try:
            return osp.getmtime(p)
        except OSError:  # removed meanwhile
            return 0.0

    found.sort(key=mtime, reverse=True)
    return found[:limit]


def _earlier_hint(path: str) -> str:
    others = _other_checkpoints(path)
    if not others:
        return ''
    return ' Checkpoints beside it, newest first: ' + ', '.join(
        osp.basename(p) for p in others) + '.'


def diagnose_checkpoint_file(path: str) -> Optional[str]:
    """What is wrong with the container of the file ``path``, or None if
    it looks intact (a ``torch.save`` zip archive whose members pass their
    CRC check, or another format that a load error must explain).

    Returns:
        str | None: e.g. ``'empty (0 bytes)'`` or ``'truncated (...)'``.
    """
    size = osp.getsize(path)
    if size == 0:
        return 'empty (0 bytes)'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            return f'corrupted (a damaged zip archive: {err})'
        if bad is not None:
            return f"corrupted (the archive member '{bad}' fails its CRC)"
        return None
    with open(path, 'rb') as file:
        head = file.read(4)
    if head == b'PK\x03\x04':
        return ('truncated (a zip archive that lacks its end records, as '
                'left by an interrupted write)')
    if head[:1] == b'\x80':  # a pickle stream (torch's legacy format)
        return None
    return 'truncated or corrupted (not a PyTorch checkpoint archive)'


def _corrupted(filename: str, problem: str,
               err: Optional[BaseException] = None
               ) -> CorruptedCheckpointError:
    detail = ''
    if err is not None:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ''
        if len(reason) > 120:
            reason = reason[:117] + '...'
        detail = f' ({type(err).__name__}: {reason})'
    return CorruptedCheckpointError(
        f"cannot load checkpoint '{filename}': the file is {problem}"
        f'{detail}. It was probably cut short (a crash or a full disk while '
        'it was written or copied, an interrupted download) or damaged on '
        'disk. Use an earlier checkpoint: `tools/train.py CONFIG --resume '
        'PATH` or `load_from=PATH`.' + _earlier_hint(filename))


def _refused(filename: str, err: BaseException) -> CheckpointError:
    reason = str(err).strip().splitlines()
    detail = next((line.strip() for line in reason
                   if 'GLOBAL' in line or 'Unsupported' in line), '')
    return CheckpointError(
        f"refusing to load '{filename}': it holds Python objects that "
        'could run code when loaded, which mmtpr never does (it loads with '
        f'weights_only=True){": " + detail if detail else ""}. Checkpoints '
        'written by mmtpr and MMEngine hold only tensors, numbers, strings '
        'and the message hub; do not use a file from a source you do not '
        'trust.')


def load_checkpoint_file(filename: str,
                         map_location: Any = 'cpu',
                         what: str = 'checkpoint') -> Any:
    """Load a ``torch.save`` file safely, with errors that name it.

    ``torch.load(weights_only=True)`` (explicitly, whatever
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says), with MMEngine's checkpoint
    objects allowed for this call only. The CRC-32 of every member of a zip
    archive is verified first (``torch.load`` does not check it: a flipped
    bit in a tensor would load silently).

    Args:
        filename (str): the file.
        map_location: as :func:`torch.load`. Defaults to 'cpu'.
        what (str): what the file is, for messages. Defaults to
            'checkpoint'.

    Returns:
        The loaded object.

    Raises:
        MissingFileError: the file does not exist.
        UnsafeFileError: it is not a regular file (a FIFO, a device, ...).
        CorruptedCheckpointError: it is empty, truncated or corrupted.
        CheckpointError: it is a TorchScript archive, or holds Python
            objects that ``weights_only`` loading refuses, or cannot be read
            for another reason.
    """
    filename = osp.expanduser(os.fspath(filename))
    if not filename:
        raise CheckpointError(f'the {what} path is empty (is the work '
                              "dir's `last_checkpoint` file empty?)")
    check_regular_file(filename, what)
    problem = diagnose_checkpoint_file(filename)
    if problem is not None:
        raise _corrupted(filename, problem)
    if is_torchscript_archive(filename):
        raise CheckpointError(
            f"'{filename}' is a TorchScript archive (e.g. OpenAI's CLIP "
            f'weights), not a {what}; CLIP weights go to '
            'model.backbone.pretrained')
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as err:
        if 'weights_only' in str(err) or 'Unsupported global' in str(err):
            raise _refused(filename, err) from None
        raise _corrupted(filename, 'corrupted (an unreadable pickle)',
                         err) from err
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise _corrupted(filename, 'not readable as a PyTorch file',
                         err) from err


def load_state_dict_file(filename: str, what: str = 'checkpoint') -> dict:
    """:func:`load_checkpoint_file` for files that must hold a dict (a
    checkpoint or a state dict); anything else is a CheckpointError."""
    loaded = load_checkpoint_file(filename, 'cpu', what)
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"{what} '{filename}' holds a {type(loaded).__name__}, not a "
            'dict (a checkpoint or a state dict)')
    return loaded
