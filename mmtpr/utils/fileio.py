"""Writing files so that they are never seen partial and never written
through a symbolic link.

:func:`atomic_write_bytes` is the one writer of mmtpr's output files
(checkpoints, results files, gallery caches, exports).
:class:`AtomicLocalBackend` is MMEngine's local file backend with that
writer, registered under mmtpr's own name ``'mmtpr_local'`` (MMEngine's
``'local'`` backend is left as it is): a config selects it with
``default_hooks.checkpoint.backend_args=dict(backend='mmtpr_local')``, as
mmtpr's default runtime does.
"""
import contextlib
import hashlib
import os
import os.path as osp
import re
import stat
import uuid
from typing import Union

from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend

_CHUNK = 64 << 20  # bytes per write call
# ".<name>.<pid>.<8 hex>.tmp": the temp files of atomic_write_bytes
_TEMP = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$')


def _temp_path(path: str) -> str:
    """A hidden sibling of ``path``, unique to this process and call."""
    directory, name = osp.split(path)
    return osp.join(directory,
                    f'.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. no permission: it exists
        return True
    return True


def remove_stale_temps(directory: str, name: Union[str, None] = None) -> int:
    """Remove the temp files that killed writers of :func:`atomic_write_bytes`
    left in ``directory`` (only those of ``name`` if given); returns how
    many were removed. Temp files of live processes are kept, and nothing
    else is touched: only regular files named like mmtpr's temp files."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or (name is not None and match['name'] != name):
            continue
        pid = int(match['pid'])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        if entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.remove(entry.path)
                removed += 1
    return removed


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


def atomic_write_bytes(data, path: Union[str, os.PathLike]) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen partial.

    The bytes go to a hidden temp file in the same directory (created with
    ``O_EXCL``, so never through an existing file or link), which is
    flushed and fsync-ed, then renamed over ``path`` with :func:`os.replace`
    (atomic on POSIX and Windows). If ``path`` is a symbolic link, the link
    itself is replaced by the file: nothing is ever written through a link
    to where it points. If anything fails the temp file is removed and
    ``path`` keeps its previous content; a writer killed outright leaves
    only its hidden temp file, which the next write of the same path (or
    :func:`remove_stale_temps`) removes.

    Args:
        data (bytes-like): the content.
        path (str | PathLike): the destination; its directory is created.

    Raises:
        IsADirectoryError: ``path`` is a directory.
    """
    path = osp.abspath(os.fspath(path))
    if osp.isdir(path) and not osp.islink(path):
        raise IsADirectoryError(f"cannot write '{path}': it is a directory")
    directory = osp.dirname(path)
    os.makedirs(directory, exist_ok=True)
    remove_stale_temps(directory, osp.basename(path))
    tmp = _temp_path(path)
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
             | getattr(os, 'O_NOFOLLOW', 0))
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
    """MMEngine's local file backend whose writes are atomic and never go
    through a symbolic link (:func:`atomic_write_bytes`).

    Registered as ``'mmtpr_local'``; select it for checkpoints with
    ``default_hooks.checkpoint.backend_args=dict(backend='mmtpr_local')``.
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


register_backend('mmtpr_local', AtomicLocalBackend)


# ---------------------------------------------------------------------------
# Reading files that may be hostile
# ---------------------------------------------------------------------------
def check_regular_file(path: str, what: str = 'file') -> os.stat_result:
    """Return the ``stat`` of ``path`` if it is a regular file (after
    following symbolic links).

    Raises:
        MissingFileError: ``path`` does not exist (or is a dangling link).
        UnsafeFileError: it exists but is not a regular file (a folder, a
            FIFO, a device such as ``/dev/zero``, a socket): reading it
            could hang or never end.
    """
    from .errors import MissingFileError, UnsafeFileError
    try:
        info = os.stat(path)
    except FileNotFoundError:
        dangling = osp.islink(path)
        raise MissingFileError(
            f"{what} '{path}' does not exist"
            + (' (a symbolic link to a missing file)' if dangling else '')
        ) from None
    except OSError as err:
        raise UnsafeFileError(f"cannot read {what} '{path}': "
                              f'{err.strerror}') from None
    except ValueError:  # an embedded NUL byte: no file has that name
        raise UnsafeFileError(
            f"{what} '{repr(path)[1:-1]}' is not a valid path (it holds a "
            'NUL byte)') from None
    if not stat.S_ISREG(info.st_mode):
        kind = _file_kind(info.st_mode)
        raise UnsafeFileError(f"{what} '{path}' is {kind}, not a regular "
                              'file; mmtpr reads only regular files')
    return info


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, 'a directory'),
                       (stat.S_ISFIFO, 'a FIFO (named pipe)'),
                       (stat.S_ISCHR, 'a character device'),
                       (stat.S_ISBLK, 'a block device'),
                       (stat.S_ISSOCK, 'a socket')):
        if test(mode):
            return name
    return 'not a regular file'


def read_bounded(path: str, max_bytes: int, what: str = 'file') -> bytes:
    """Read a whole regular file of at most ``max_bytes`` bytes.

    The file is opened without blocking (a FIFO swapped in after the check
    cannot hang the reader) and checked again on the open descriptor; no
    more than ``max_bytes + 1`` bytes are ever read, whatever the file
    claims its size is.

    Raises:
        MissingFileError: the file does not exist.
        UnsafeFileError: not a regular file, or larger than ``max_bytes``.
    """
    from .errors import UnsafeFileError
    check_regular_file(path, what)
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0)
                 | getattr(os, 'O_BINARY', 0))
    with os.fdopen(fd, 'rb') as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{what} '{path}' is "
                                  f'{_file_kind(info.st_mode)}, not a '
                                  'regular file')
        if info.st_size > max_bytes:
            raise UnsafeFileError(
                f"{what} '{path}' has {info.st_size:,} bytes, more than the "
                f'limit of {max_bytes:,}')
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(f"{what} '{path}' is larger than the limit of "
                              f'{max_bytes:,} bytes')
    return data


def is_within(path: str, root: str) -> bool:
    """Whether ``path`` resolves (symbolic links followed) to ``root`` or
    a place inside it."""
    real = osp.realpath(path)
    real_root = osp.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep)
                                                + os.sep)


def sha256_file(path: str) -> str:
    """The SHA-256 of a file's content (hex), read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 22), b''):
            digest.update(block)
    return digest.hexdigest()
