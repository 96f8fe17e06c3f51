"""The per-query results file of :class:`~mmtpr.evaluation.TPRMetric`:
checks of its path and its atomic write."""
import os
import os.path as osp
from typing import Optional

from mmengine.fileio import dump

from mmtpr.utils.fileio import atomic_write_bytes

# Extension of ``out_file`` -> format of mmengine.fileio.dump.
OUT_FORMATS = {'.pkl': 'pkl', '.pickle': 'pkl', '.json': 'json'}


def out_format(out_file: str) -> str:
    """The format of mmengine.fileio.dump for a checked ``out_file``."""
    return OUT_FORMATS[osp.splitext(out_file)[1].lower()]


def check_out_file(out_file: Optional[str]) -> Optional[str]:
    """Check ``out_file`` when the metric is built.

    A path that cannot be written then fails before the whole evaluation,
    not after it.

    Args:
        out_file (str | PathLike, optional): The results file.

    Returns:
        str, optional: The path as a str, or None.

    Raises:
        TypeError: If ``out_file`` is not a path.
        ValueError: If its extension is not one of :data:`OUT_FORMATS`, if
            it is an existing directory, or if the nearest existing
            directory above it is not a writable directory.
    """
    if out_file is None:
        return None
    if not isinstance(out_file, (str, os.PathLike)):
        raise TypeError('TPRMetric: `out_file` must be a path, got '
                        f'{out_file!r}.')
    out_file = os.fspath(out_file)
    ext = osp.splitext(out_file)[1].lower()
    if ext not in OUT_FORMATS:
        raise ValueError(f'TPRMetric: `out_file` must end with one of '
                         f'{sorted(OUT_FORMATS)}, got {out_file!r}.')
    # Checked where a link points; the write itself replaces a link with a
    # file and never writes through it (atomic_write_bytes).
    path = osp.realpath(out_file)
    if osp.isdir(path):
        raise ValueError(f'TPRMetric: `out_file` {out_file!r} is an '
                         'existing directory; expected a file path.')
    # Missing directories are created at the write: the nearest existing
    # one must be a directory we can create files in.
    parent = osp.dirname(path)
    while not osp.exists(parent) and osp.dirname(parent) != parent:
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        raise ValueError(f'TPRMetric: cannot write `out_file` {out_file!r}: '
                         f'{parent!r} is not a directory.')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f'TPRMetric: cannot write `out_file` {out_file!r}: '
                         f'the directory {parent!r} is not writable.')
    return out_file


def write_results_file(content: dict, out_file: str) -> None:
    """Dump ``content`` into ``out_file`` (format from its extension) so
    that readers never see a partial file.

    Args:
        content (dict): The results.
        out_file (str): A path checked by :func:`check_out_file`.
    """
    data = dump(content, file_format=out_format(out_file))
    atomic_write_bytes(data.encode() if isinstance(data, str) else data,
                       out_file)
