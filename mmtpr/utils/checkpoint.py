"""Checkpoints that load safely, are written atomically and fail loudly when
damaged.

:func:`setup_mmengine_checkpoints` (called once by ``import mmtpr``) applies
the three process-wide parts:

- ``torch.load(weights_only=True)`` reads MMEngine checkpoints
  (:func:`allow_mmengine_checkpoint_globals`, below);
- local writes through MMEngine's file backend (``save_checkpoint``) are
  atomic (:class:`AtomicLocalBackend`);
- a local checkpoint that is empty, truncated or corrupted raises
  :class:`CorruptedCheckpointError` naming the file
  (:func:`load_local_checkpoint`), for ``load_from`` and ``resume`` alike.

The PETL-only helpers are in :mod:`mmtpr.utils.petl_checkpoint`. See
docs/checkpoints.md.

Loading MMEngine checkpoints with ``torch.load(weights_only=True)``
-------------------------------------------------------------------

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
import contextlib
import os
import os.path as osp
import pickle
import re
import uuid
import zipfile
from typing import Any, List, Optional, Union

import numpy as np
import torch
from mmengine.fileio.backends import LocalBackend
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


# ---------------------------------------------------------------------------
# Atomic local writes
# ---------------------------------------------------------------------------
# MMEngine's save_checkpoint serialises the checkpoint into memory and hands
# the bytes to the file backend; LocalBackend.put opens the final path with
# 'wb', so a crash (or a full disk) while writing leaves a truncated file
# under the real name; without fsync a power loss can even truncate a file
# whose write had returned and that `last_checkpoint` already names.
_CHUNK = 64 << 20  # bytes per write call


def _temp_path(path: str) -> str:
    """A hidden sibling of ``path``, unique to this process and call."""
    directory, name = osp.split(path)
    return osp.join(directory,
                    f'.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')


def _temp_pattern(path: str) -> 're.Pattern':
    return re.compile(rf'^\.{re.escape(osp.basename(path))}\.(\d+)\.'
                      r'[0-9a-f]{8}\.tmp$')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. no permission: it exists
        return True
    return True


def _remove_stale_temps(path: str) -> None:
    """Remove the temp files of ``path`` left by killed writers."""
    directory = osp.dirname(path) or '.'
    pattern = _temp_pattern(path)
    for name in os.listdir(directory):
        match = pattern.match(name)
        if match and int(match.group(1)) != os.getpid() and \
                not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.remove(osp.join(directory, name))


def _write_chunks(file, data) -> None:
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        file.write(view[start:start + _CHUNK])


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; not possible on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: Union[str, os.PathLike]) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen partial.

    The bytes go to a hidden temp file in the same directory (same file
    system), which is flushed and fsync-ed, then renamed over ``path`` with
    :func:`os.replace` (atomic on POSIX and Windows). If anything fails the
    temp file is removed and ``path`` keeps its previous content; a writer
    killed outright leaves only its hidden temp file, which the next write
    of the same path removes.

    Args:
        data (bytes-like): the content.
        path (str | PathLike): the destination; its directory is created.
    """
    # a symlink keeps pointing at the (replaced) file it names, as with
    # open(path, 'wb')
    path = osp.realpath(os.fspath(path))
    directory = osp.dirname(path)
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temps(path)
    tmp = _temp_path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    fd = os.open(tmp, flags, 0o666)  # mode as open(): 0o666 & ~umask
    try:
        with os.fdopen(fd, 'wb') as file:
            _write_chunks(file, data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic :meth:`put`.

    Registered by :func:`setup_mmengine_checkpoints` as the ``'local'``
    backend (the one for paths without a ``scheme://``), so every
    checkpoint that :class:`CheckpointHook` saves goes through
    :func:`atomic_write_bytes`.
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        atomic_write_bytes(obj, filepath)


# ---------------------------------------------------------------------------
# Clear errors for damaged checkpoints
# ---------------------------------------------------------------------------
class CorruptedCheckpointError(ValueError):
    """A checkpoint file exists but is empty, truncated or corrupted."""


def _other_checkpoints(path: str, limit: int = 5) -> List[str]:
    """Other ``*.pth`` files beside ``path``, newest first."""
    directory = osp.dirname(osp.abspath(path))
    if not osp.isdir(directory):
        return []
    found = [osp.join(directory, name) for name in os.listdir(directory)
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
    """What is wrong with the file ``path``, or None if its container looks
    intact (a ``torch.save`` zip archive whose members pass their CRC
    check, so a load error has another cause).

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
    return 'truncated or corrupted (not a PyTorch checkpoint archive)'


def _corrupted(filename: str, problem: str,
               err: Optional[BaseException] = None
               ) -> CorruptedCheckpointError:
    detail = ''
    if err is not None:
        reason = str(err).strip()
        if len(reason) > 120:
            reason = reason[:117] + '...'
        detail = f' ({type(err).__name__}: {reason})'
    return CorruptedCheckpointError(
        f"cannot load checkpoint '{filename}': the file is {problem}"
        f'{detail}. It was probably cut short (a crash or a full disk while '
        'it was written or copied, an interrupted download) or damaged on '
        'disk. Use an earlier checkpoint: `tools/train.py CONFIG --resume '
        'PATH` or `load_from=PATH`.' + _earlier_hint(filename))


def load_from_local(filename: str, map_location=None) -> Any:
    """MMEngine's local checkpoint loader with integrity checks and clear
    errors.

    Replaces :func:`mmengine.runner.checkpoint.load_from_local` for paths
    without a ``scheme://`` (registered by
    :func:`setup_mmengine_checkpoints`), so ``load_from``, ``resume`` and
    ``init_cfg=dict(type='Pretrained')`` all report a missing file, or an
    empty, truncated or corrupted one, by name and suggest an earlier
    checkpoint. The CRC-32 of every member of a ``torch.save`` archive is
    verified first (``torch.load`` does not: a flipped bit in a tensor
    would load silently). Other load errors (e.g. ``weights_only``
    refusing a global) are raised unchanged.

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptedCheckpointError: the file is empty, truncated or corrupted.
    """
    filename = osp.expanduser(os.fspath(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f"checkpoint '{filename}' does not exist"
            + ('' if filename else " (an empty path: is the work dir's "
               '`last_checkpoint` file empty?)') + '.'
            + _earlier_hint(filename))
    if osp.getsize(filename) == 0 or zipfile.is_zipfile(filename):
        problem = diagnose_checkpoint_file(filename)
        if problem is not None:
            raise _corrupted(filename, problem)
    try:
        return torch.load(filename, map_location=map_location)
    except Exception as err:
        problem = diagnose_checkpoint_file(filename)
        if problem is None:
            raise
        raise _corrupted(filename, problem, err) from err


def setup_mmengine_checkpoints() -> None:
    """Apply mmtpr's process-wide checkpoint fixes to MMEngine.

    Allows MMEngine's globals for ``torch.load(weights_only=True)``,
    registers :class:`AtomicLocalBackend` for local paths and
    :func:`load_from_local` as the local checkpoint loader. Called once
    when :mod:`mmtpr` is imported; calling it again is harmless.
    """
    from mmengine.fileio import io as fileio_io
    from mmengine.fileio import register_backend
    from mmengine.runner.checkpoint import CheckpointLoader

    allow_mmengine_checkpoint_globals()
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # get_file_backend(enable_singleton=True) caches instances
    for key, backend in list(fileio_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            fileio_io.backend_instances[key] = AtomicLocalBackend()
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)
