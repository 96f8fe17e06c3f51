"""Generation of a SynthPedes folder in the CUHK-PEDES format.

Samples the identities, renders and captions every image, and writes the
annotation, attribute and metadata files into a temporary sibling folder
that is renamed into place at the end.
"""
import collections
import json
import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Deque, Dict, List, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .attributes import _sample_identities
from .camera import _apply_camera, _render_size
from .captions import _make_captions, tokenize
from .drawing import _noise_banks, _render_image
from .meta import (
    ANNO_FILE,
    IMG_DIR,
    SPLITS,
    SYNTH_ATTR_FILE,
    SYNTH_META_FILE,
    _check_args,
    _meta,
)


# ---------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------
def _dir_is_nonempty(path: str) -> bool:
    if not os.path.lexists(path):
        return False
    if not os.path.isdir(path):
        return True  # a file in the way counts as "something is there"
    with os.scandir(path) as it:
        return any(True for _ in it)


def _rename_into_place(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except OSError:
        # Windows does not rename onto an empty folder: remove it (rmdir
        # fails on a non-empty one, so nothing is lost) and retry once.
        if not os.path.isdir(dst) or _dir_is_nonempty(dst):
            raise
        os.rmdir(dst)
        os.rename(src, dst)


class _Progress:
    """MMEngine's progress bar on the current ``sys.stdout``, after a line
    that says what it counts, ended with a new line when closed."""

    def __init__(self, total: int, title: str) -> None:
        import sys

        from mmengine.utils import ProgressBar
        sys.stdout.write(f'{title}\n')
        self.bar = ProgressBar(total, file=sys.stdout)

    def update(self, num: int = 1) -> None:
        self.bar.update(num)

    def close(self) -> None:
        self.bar.file.write('\n')
        self.bar.file.flush()


def _progress(total: int, enabled: bool, title: str):
    return _Progress(total, title) if enabled else None


def _write_json(path: str, obj: Any) -> None:
    # dumps() uses the C encoder; dump() streams through the slow Python one.
    text = json.dumps(obj, ensure_ascii=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def generate_synth_pedes(out_dir: str,
                         num_ids: tuple = (400, 50, 50),
                         images_per_id: int = 4,
                         captions_per_image: int = 2,
                         image_size: tuple = (192, 64),
                         seed: int = 0,
                         caption_style: str = 'standard',
                         camera: Union[str, dict] = 'standard',
                         show_progress: bool = True) -> dict:
    """Write a synthetic dataset in the CUHK-PEDES format.

    ``out_dir/reid_raw.json`` holds one record per image, e.g.
    ``{"split": "train", "captions": ["A man with ...", ...], "file_path":
    "train/0001_01.jpg", "processed_tokens": [["a", "man", ...], ...],
    "id": 1}``, with 1-based person ids unique over all splits (train ids
    first, then val, then test); the JPEGs are under ``out_dir/imgs``.
    ``synth_meta.json`` stores the arguments, the format version and the
    statistics (see :func:`synth_meta_matches`), ``synth_attributes.json``
    the attributes of every identity keyed by id.

    ``caption_style`` and ``camera`` are the two sides of a domain (how
    annotators write, what the camera sees); the identities depend on
    ``seed`` and ``num_ids`` only.

    The folder is built in a temporary sibling and renamed into place, so
    ``out_dir`` is either absent or complete, even with concurrent
    callers. Equal arguments give byte-identical files.

    Args:
        out_dir (str): Destination folder; must not exist or be empty.
            Parent folders are created.
        num_ids (tuple[int, int, int]): Identities in (train, val, test).
            Defaults to (400, 50, 50).
        images_per_id (int): Images of every identity. Defaults to 4.
        captions_per_image (int): Captions of every image. Defaults to 2.
        image_size (tuple[int, int]): ``(height, width)`` of the images.
            Defaults to (192, 64).
        seed (int): Seed of ``numpy.random.default_rng``. Defaults to 0.
        caption_style (str): 'standard' (sentences, 15-45 words), 'terse'
            (keywords, 8-24 words) or 'detailed' (28-55 words, gender last);
            see :mod:`.captions`. Defaults to 'standard'.
        camera (str | dict): A preset ('standard', 'cctv', 'streetlight')
            or a dict of the factors ``scale``, ``color_cast``, ``blur``
            and ``back_view_prob``; see :mod:`.camera`. Defaults to
            'standard'.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``{split: {'ids': int, 'images': int, 'captions': int}}`` for
        ``'train'``, ``'val'`` and ``'test'``.

    Raises:
        ValueError: If an argument is invalid.
        FileExistsError: If ``out_dir`` exists and is not empty, also when
            another caller created it while this one was generating.
    """
    settings = _check_args(num_ids, images_per_id, captions_per_image,
                           image_size, seed, caption_style, camera)
    return _write_atomically(os.path.abspath(os.fspath(out_dir)), settings,
                             show_progress)


def _write_atomically(out_dir: str, settings: Dict[str, Any],
                      show_progress: bool) -> Dict[str, Dict[str, int]]:
    if _dir_is_nonempty(out_dir):
        raise FileExistsError(
            f'refusing to write into non-empty folder {out_dir!r}')
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(out_dir)}.tmp-',
                           dir=parent)
    try:
        stats = _generate_into(tmp, settings, show_progress)
        # mkdtemp creates 0o700; the dataset is meant to be shared.
        os.chmod(tmp, 0o755)
        try:
            # On POSIX this also replaces an empty out_dir, but fails if
            # another caller has filled it meanwhile.
            _rename_into_place(tmp, out_dir)
        except OSError as e:
            raise FileExistsError(
                f'{out_dir!r} appeared while generating; not overwriting it'
            ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


class _ImageWriter:
    """Saves JPEGs on a writer thread, with an optional progress bar.

    JPEG encoding and file creation release the GIL: the thread overlaps
    them with drawing. Rendering itself stays sequential, so the random
    stream and thus the output do not depend on thread timing.
    """

    def __init__(self, img_root: str, total: int, show_progress: bool):
        self.img_root = img_root
        self.bar = _progress(total, show_progress,
                             f'synth-pedes: writing {total} images')
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.pending: Deque[Future] = collections.deque()

    def save(self, img, rel: str) -> None:
        self.pending.append(
            self.pool.submit(img.save, os.path.join(self.img_root, rel),
                             'JPEG', quality=95, subsampling=0))
        while len(self.pending) > 64:  # bound the memory held
            self.pending.popleft().result()
        if self.bar is not None:
            self.bar.update(1)

    def __enter__(self) -> '_ImageWriter':
        return self

    def __exit__(self, exc_type, *_) -> None:
        try:
            while exc_type is None and self.pending:
                self.pending.popleft().result()  # re-raises a failed write
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            if self.bar is not None:
                self.bar.close()


def _generate_into(root: str, settings: Dict[str, Any],
                   show_progress: bool) -> Dict[str, Dict[str, int]]:
    num_ids = settings['num_ids']
    images_per_id = settings['images_per_id']
    cpi = settings['captions_per_image']
    image_size = tuple(settings['image_size'])
    camera = settings['camera']
    rng = np.random.default_rng(settings['seed'])
    identities = _sample_identities(rng, sum(num_ids))
    noise_banks = _noise_banks(rng, _render_size(image_size, camera))
    id_width = max(4, len(str(sum(num_ids))))
    img_width = max(2, len(str(images_per_id)))
    records: List[Dict[str, Any]] = []
    attributes: Dict[str, Dict[str, Any]] = {}
    stats: Dict[str, Dict[str, int]] = {}
    with _ImageWriter(os.path.join(root, IMG_DIR),
                      sum(num_ids) * images_per_id, show_progress) as writer:
        for split, count in zip(SPLITS, num_ids):
            os.makedirs(os.path.join(root, IMG_DIR, split), exist_ok=True)
            stats[split] = {'ids': count, 'images': count * images_per_id,
                            'captions': count * images_per_id * cpi}
            for _ in range(count):
                pid = len(attributes) + 1
                ident = identities[pid - 1]
                attributes[str(pid)] = {'split': split, **ident['attrs']}
                for k in range(1, images_per_id + 1):
                    rel = f'{split}/{pid:0{id_width}d}_{k:0{img_width}d}.jpg'
                    img, captions = _photo(rng, ident, settings, noise_banks)
                    writer.save(img, rel)
                    records.append({
                        'split': split,
                        'captions': captions,
                        'file_path': rel,
                        'processed_tokens': [tokenize(c) for c in captions],
                        'id': pid,
                    })
    _write_json(os.path.join(root, ANNO_FILE), records)
    _write_json(os.path.join(root, SYNTH_ATTR_FILE), attributes)
    _write_json(os.path.join(root, SYNTH_META_FILE),
                {**_meta(settings), 'stats': stats})
    return stats


def _photo(rng: np.random.Generator, ident: Dict[str, Any],
           settings: Dict[str, Any],
           noise_banks: Sequence[Image.Image]) -> Tuple[Image.Image,
                                                        List[str]]:
    """One photo of ``ident`` through the camera, and its captions."""
    camera = settings['camera']
    image_size = tuple(settings['image_size'])
    # 1 - 0.4 == 0.6 exactly: the standard camera keeps the old stream.
    front = rng.random() < 1.0 - camera['back_view_prob']
    pose = 'front' if front else 'back'
    img = _render_image(rng, ident, _render_size(image_size, camera), pose,
                        noise_banks)
    img = _apply_camera(img, camera, image_size)
    captions = _make_captions(rng, ident['attrs'], pose,
                              settings['captions_per_image'],
                              settings['caption_style'])
    return img, captions
