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
from typing import Any, Deque, Dict, List, Tuple

import numpy as np

from .attributes import _sample_identities
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


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a soft dependency
        return None
    return tqdm(total=total, desc='synth-pedes', unit='img')


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
                         show_progress: bool = True) -> dict:
    """Write a synthetic dataset in the CUHK-PEDES format.

    ``out_dir/reid_raw.json`` holds one record per image::

        {"split": "train", "captions": ["A man with ...", ...],
         "file_path": "train/0001_01.jpg",
         "processed_tokens": [["a", "man", "with", ...], ...], "id": 1}

    with 1-based person ids that are unique over all splits (train ids
    first, then val, then test). Images are JPEGs under ``out_dir/imgs``.
    ``synth_meta.json`` stores the arguments, the format version and the
    statistics (see :func:`synth_meta_matches`), ``synth_attributes.json``
    the attributes of every identity keyed by id.

    The folder is built in a temporary sibling and renamed into place at
    the end, so ``out_dir`` is either absent or complete, and concurrent
    callers cannot mix their files. The output is byte-identical for equal
    arguments.

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
        show_progress (bool): Show a tqdm progress bar over the images.
            Defaults to True.

    Returns:
        dict: ``{split: {'ids': int, 'images': int, 'captions': int}}`` for
        ``'train'``, ``'val'`` and ``'test'``.

    Raises:
        ValueError: If an argument is invalid.
        FileExistsError: If ``out_dir`` exists and is not empty, also when
            another caller created it while this one was generating.
    """
    num_ids, image_size = _check_args(num_ids, images_per_id,
                                      captions_per_image, image_size, seed)
    out_dir = os.path.abspath(os.fspath(out_dir))
    if _dir_is_nonempty(out_dir):
        raise FileExistsError(
            f'refusing to write into non-empty folder {out_dir!r}')
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(out_dir)}.tmp-',
                           dir=parent)
    try:
        stats = _generate_into(tmp, num_ids, images_per_id,
                               captions_per_image, image_size, seed,
                               show_progress)
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


def _generate_into(root: str, num_ids: Tuple[int, int, int],
                   images_per_id: int, captions_per_image: int,
                   image_size: Tuple[int, int], seed: int,
                   show_progress: bool) -> Dict[str, Dict[str, int]]:
    rng = np.random.default_rng(seed)
    total_ids = sum(num_ids)
    identities = _sample_identities(rng, total_ids)
    noise_banks = _noise_banks(rng, image_size)
    id_width = max(4, len(str(total_ids)))
    img_width = max(2, len(str(images_per_id)))
    records: List[Dict[str, Any]] = []
    attributes: Dict[str, Dict[str, Any]] = {}
    stats: Dict[str, Dict[str, int]] = {}
    bar = _progress(total_ids * images_per_id, show_progress)
    # JPEG encoding and file creation release the GIL: a writer thread
    # overlaps them with drawing. Rendering itself stays sequential, so the
    # random stream and thus the output do not depend on thread timing.
    writer = ThreadPoolExecutor(max_workers=2)
    pending: Deque[Future] = collections.deque()
    pid = 0
    try:
        for split, count in zip(SPLITS, num_ids):
            os.makedirs(os.path.join(root, IMG_DIR, split), exist_ok=True)
            stats[split] = {
                'ids': count,
                'images': count * images_per_id,
                'captions': count * images_per_id * captions_per_image,
            }
            for _ in range(count):
                ident = identities[pid]
                pid += 1
                attributes[str(pid)] = {'split': split, **ident['attrs']}
                for k in range(1, images_per_id + 1):
                    pose = 'front' if rng.random() < 0.6 else 'back'
                    img = _render_image(rng, ident, image_size, pose,
                                        noise_banks)
                    rel = f'{split}/{pid:0{id_width}d}_{k:0{img_width}d}.jpg'
                    pending.append(
                        writer.submit(img.save, os.path.join(root, IMG_DIR,
                                                             rel),
                                      'JPEG', quality=95, subsampling=0))
                    while len(pending) > 64:  # bound the memory held
                        pending.popleft().result()
                    captions = _make_captions(rng, ident['attrs'], pose,
                                             captions_per_image)
                    records.append({
                        'split': split,
                        'captions': captions,
                        'file_path': rel,
                        'processed_tokens': [tokenize(c) for c in captions],
                        'id': pid,
                    })
                    if bar is not None:
                        bar.update(1)
        while pending:  # re-raises a failed write
            pending.popleft().result()
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    _write_json(os.path.join(root, ANNO_FILE), records)
    _write_json(os.path.join(root, SYNTH_ATTR_FILE), attributes)
    meta = _meta(num_ids, images_per_id, captions_per_image, image_size,
                 seed)
    meta['stats'] = stats
    _write_json(os.path.join(root, SYNTH_META_FILE), meta)
    return stats
