"""Galleries: image folders read safely, and their features saved, cached
and loaded with their content bound to a digest.

A :class:`Gallery` holds L2-normalised image features, the image paths
relative to the gallery's root folder, optionally the person ids, and the
identity of the model that computed the features. Its files (``save`` /
``load``; the inferencer's cache uses the same format) are read with
``weights_only=True`` and carry a sha256 digest over all of it: a file whose
features, paths, ids or model identity were changed without recomputing the
digest is refused (a cache entry is then re-encoded). Paths must be relative
and stay inside the root: an absolute path, a ``..`` or a link out of the
root is refused.
"""
import hashlib
import io
import json
import os
import os.path as osp
import stat
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mmtpr.utils.checkpoint import load_checkpoint_file
from mmtpr.utils.errors import DataError, MMTPRError
from mmtpr.utils.fileio import atomic_write_bytes, is_within

from .index import build_index

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif',
                    '.tiff')
GALLERY_FORMAT = 'mmtpr-gallery-v2'


def _bad_entry(path: str, root: str) -> Optional[str]:
    """Why the gallery entry ``path`` (under ``root``) is not an image file
    mmtpr reads, or None."""
    try:
        info = os.stat(path)
    except OSError:
        return ('a symbolic link to a missing file' if osp.islink(path)
                else 'not readable')
    if not stat.S_ISREG(info.st_mode):
        return 'not a regular file (a FIFO, a device or a folder)'
    if not is_within(path, root):
        return 'a symbolic link out of the gallery folder'
    return None


def list_images(folder: str, on_bad: str = 'error'
                ) -> Tuple[List[str], List[Tuple[str, str]]]:
    """The image files under ``folder`` (recursively, sorted).

    Only regular files inside ``folder`` count: an entry named like an
    image that is a FIFO, a device, a folder, a dangling link or a link
    out of the folder is an error (``on_bad='error'``) or skipped and
    reported (``on_bad='skip'``).

    Returns:
        tuple: the image paths, and the skipped ``(path, reason)``.

    Raises:
        MissingFileError: ``folder`` is not a folder.
        DataError: a bad entry (with ``on_bad='error'``), or no image.
    """
    from mmtpr.utils.errors import MissingFileError
    if on_bad not in ('error', 'skip'):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    if not osp.isdir(folder):
        raise MissingFileError(f"gallery folder '{folder}' not found")
    paths, skipped = [], []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if osp.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = osp.join(root, name)
            problem = _bad_entry(path, folder)
            if problem is None:
                paths.append(path)
            elif on_bad == 'skip':
                skipped.append((path, problem))
            else:
                raise DataError(f"gallery entry '{path}' is {problem}; "
                                'remove it or skip bad images (on_bad='
                                "'skip', --skip-bad-images)")
    if not paths:
        raise DataError(f"gallery folder '{folder}' holds no image "
                        f'({", ".join(IMAGE_EXTENSIONS)})')
    return paths, skipped


def file_stats(paths: Sequence[str]) -> List[List[int]]:
    """(size, mtime in ns) of each file, to tell when a cache is stale."""
    stats = []
    for path in paths:
        info = os.stat(path)
        stats.append([int(info.st_size), int(info.st_mtime_ns)])
    return stats


def _relative(path: str, root: str) -> str:
    rel = osp.relpath(osp.abspath(path), osp.abspath(root))
    return rel.replace(os.sep, '/')


def _check_relative(rel: Any, root: str, source: str) -> str:
    if not isinstance(rel, str) or not rel:
        raise DataError(f'{source}: a path is not a non-empty string '
                        f'({rel!r})')
    if '\x00' in rel:
        raise DataError(f'{source}: the path {rel!r} holds a NUL byte')
    parts = rel.split('/')
    if osp.isabs(rel) or rel.startswith('\\') or '..' in parts or \
            ':' in parts[0]:
        raise DataError(f'{source}: the path {rel!r} leaves the gallery '
                        'folder (absolute or with ..)')
    if not is_within(osp.join(root, *parts), root):
        raise DataError(f'{source}: the path {rel!r} is a link out of the '
                        'gallery folder')
    return rel


class Gallery:
    """Normalised image features with their paths (and person ids).

    Args:
        features (Tensor): (N, D) L2-normalised float32 features.
        paths (list[str]): the N image paths (absolute, or relative to the
            current folder); they must lie under ``root``.
        root (str): the gallery's root folder.
        pids (list[int], optional): person ids, when known.
        model_id (str): identity of the model that computed the features
            (see :attr:`TPRInferencer.model_id`).
        stats (list, optional): (size, mtime) of each image when encoded.
    """

    def __init__(self,
                 features: torch.Tensor,
                 paths: Sequence[str],
                 root: str,
                 pids: Optional[Sequence[int]] = None,
                 model_id: str = '',
                 stats: Optional[Sequence[Sequence[int]]] = None) -> None:
        if features.dim() != 2 or features.shape[0] != len(paths):
            raise DataError(f'features must be (N, D) with N = {len(paths)}'
                            f' paths, got {tuple(features.shape)}')
        if pids is not None and len(pids) != len(paths):
            raise DataError(f'{len(pids)} pids for {len(paths)} images')
        self.features = features.float().contiguous()
        self.root = osp.abspath(root)
        self.relpaths = [_relative(p, self.root) for p in paths]
        self.pids = None if pids is None else [int(p) for p in pids]
        self.model_id = model_id
        self.stats = None if stats is None else [list(s) for s in stats]
        self._indexes: Dict[str, Any] = {}

    @property
    def paths(self) -> List[str]:
        """The image paths (under :attr:`root`)."""
        return [osp.join(self.root, *rel.split('/')) for rel in
                self.relpaths]

    def __len__(self) -> int:
        return len(self.relpaths)

    def index(self, kind: str = 'exact', **options):
        """The search index of ``kind`` (built once per kind and options)."""
        key = json.dumps([kind, sorted(options.items())], default=str)
        if key not in self._indexes:
            self._indexes[key] = build_index(self.features, kind=kind,
                                             **options)
        return self._indexes[key]

    def _content(self) -> Dict[str, Any]:
        return dict(format=GALLERY_FORMAT, features=self.features,
                    paths=self.relpaths, root=self.root, pids=self.pids,
                    model_id=self.model_id, stats=self.stats)

    def save(self, path: str) -> str:
        """Write the gallery to ``path`` atomically (never through a link);
        returns the path."""
        content = self._content()
        content['digest'] = _digest(content)
        buffer = io.BytesIO()
        torch.save(content, buffer)
        atomic_write_bytes(buffer.getbuffer(), path)
        return path

    @classmethod
    def load(cls, path: str, root: Optional[str] = None) -> 'Gallery':
        """Read a gallery written by :meth:`save`, checking it whole.

        Args:
            path (str): the file.
            root (str, optional): where the images are now. By default
                the root recorded in the file, which must then be the
                file's own folder or lie inside it: the file's digest is
                not a signature, so a root elsewhere (say ``/etc``) is
                only used when the caller names it.

        Raises:
            MMTPRError: a missing, unreadable, malformed or tampered file,
                named with the reason.
        """
        data = load_checkpoint_file(path, 'cpu', 'gallery feature file')
        source = f"gallery feature file '{path}'"
        if not isinstance(data, dict) or data.get('format') != \
                GALLERY_FORMAT:
            raise DataError(f'{source} is not an mmtpr gallery feature file '
                            f'(expected format {GALLERY_FORMAT})')
        _check_fields(data, source)
        if data.get('digest') != _digest(data):
            raise DataError(f'{source} does not match its digest: its '
                            'features, paths, ids or model identity were '
                            'changed after it was written')
        if root is None:
            root = osp.abspath(data['root'])
            home = osp.dirname(osp.abspath(path))
            if not is_within(root, home):
                raise DataError(
                    f"{source} names the image folder '{root}', which is "
                    f"not inside the file's own folder '{home}'; pass the "
                    'image folder explicitly (root=..., retrieve.py '
                    '--gallery-root) to use images elsewhere')
        root = osp.abspath(root)
        rels = [_check_relative(r, root, source) for r in data['paths']]
        return cls(data['features'], [osp.join(root, *r.split('/'))
                                      for r in rels], root, data['pids'],
                   data['model_id'], data['stats'])


def _check_fields(data: Dict[str, Any], source: str) -> None:
    features, paths = data.get('features'), data.get('paths')
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or \
            not features.dtype.is_floating_point:
        raise DataError(f'{source}: features are not a 2-D float tensor')
    if not isinstance(paths, list) or len(paths) != features.shape[0]:
        raise DataError(f'{source}: paths are not a list of '
                        f'{features.shape[0]} entries')
    pids, stats = data.get('pids'), data.get('stats')
    if pids is not None and not (isinstance(pids, list) and len(pids) == len(
            paths) and all(isinstance(p, int) for p in pids)):
        raise DataError(f'{source}: pids are not a list of ints')
    if stats is not None and not (isinstance(stats, list) and len(stats) ==
                                  len(paths)):
        raise DataError(f'{source}: stats do not match the paths')
    for key in ('root', 'model_id', 'digest'):
        if not isinstance(data.get(key), str):
            raise DataError(f'{source}: {key} is not a string')


def _digest(content: Dict[str, Any]) -> str:
    """sha256 over every field of a gallery file but the digest."""
    meta = {k: content.get(k) for k in ('format', 'paths', 'root', 'pids',
                                         'model_id', 'stats')}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    features = content['features'].detach().to('cpu', torch.float32)
    digest.update(str(tuple(features.shape)).encode())
    digest.update(np.ascontiguousarray(features.numpy()).tobytes())
    return digest.hexdigest()


def read_cache(path: str, model_id: str, paths: List[str],
               stats: List[List[int]], root: str) -> Optional[Gallery]:
    """The cached gallery at ``path`` if it is valid for this model, these
    images and their stats; None otherwise (a miss, never an error: a
    missing, unreadable, malformed, tampered, linked or stale entry is
    re-encoded)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None  # a link, a folder, a FIFO: never followed
    try:
        cached = Gallery.load(path, root)
    except (MMTPRError, OSError, RuntimeError):
        return None
    if cached.model_id != model_id or cached.stats != stats or \
            cached.relpaths != [_relative(p, root) for p in paths]:
        return None
    return cached
