"""On-disk layout, metadata and argument checks of SynthPedes folders.

Holds the file names of a generated folder, the format version, the
validation of the generator's arguments and the reading and comparison of
``synth_meta.json``, which decides whether a folder can be reused.
"""
import json
import numbers
import os
from typing import Any, Dict, Optional, Tuple

SYNTH_META_FILE = 'synth_meta.json'
SYNTH_ATTR_FILE = 'synth_attributes.json'
SYNTH_FORMAT_VERSION = 1
ANNO_FILE = 'reid_raw.json'
IMG_DIR = 'imgs'
SPLITS = ('train', 'val', 'test')


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(num_ids: Any, images_per_id: Any, captions_per_image: Any,
                image_size: Any, seed: Any) -> Tuple[Tuple[int, int, int],
                                                     Tuple[int, int]]:
    if (not isinstance(num_ids, (tuple, list)) or len(num_ids) != 3
            or not all(_is_int(n) and n >= 0 for n in num_ids)):
        raise ValueError('num_ids must be 3 non-negative ints (train, val, '
                         f'test), got {num_ids!r}')
    if num_ids[0] == 0:
        raise ValueError(f'num_ids must have train > 0, got {num_ids!r}')
    if not _is_int(images_per_id) or images_per_id < 1:
        raise ValueError(
            f'images_per_id must be an int >= 1, got {images_per_id!r}')
    if not _is_int(captions_per_image) or captions_per_image < 1:
        raise ValueError('captions_per_image must be an int >= 1, got '
                         f'{captions_per_image!r}')
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(_is_int(n) for n in image_size)
            or image_size[0] < 32 or image_size[1] < 16):
        raise ValueError('image_size must be (height, width) ints of at '
                         f'least (32, 16), got {image_size!r}')
    if not _is_int(seed) or seed < 0:
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')
    return (tuple(int(n) for n in num_ids),
            (int(image_size[0]), int(image_size[1])))


def _meta(num_ids: Tuple[int, int, int], images_per_id: int,
          captions_per_image: int, image_size: Tuple[int, int],
          seed: int) -> Dict[str, Any]:
    return {
        'format_version': SYNTH_FORMAT_VERSION,
        'num_ids': list(num_ids),
        'images_per_id': int(images_per_id),
        'captions_per_image': int(captions_per_image),
        'image_size': list(image_size),
        'seed': int(seed),
    }


def read_synth_meta(out_dir: str) -> Optional[Dict[str, Any]]:
    """Read ``synth_meta.json`` of a generated folder.

    Args:
        out_dir (str): A folder written by :func:`generate_synth_pedes`.

    Returns:
        dict | None: The metadata, or None if the file is missing or not
        valid JSON.
    """
    path = os.path.join(os.fspath(out_dir), SYNTH_META_FILE)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def synth_meta_matches(out_dir: str,
                       num_ids: tuple = (400, 50, 50),
                       images_per_id: int = 4,
                       captions_per_image: int = 2,
                       image_size: tuple = (192, 64),
                       seed: int = 0) -> bool:
    """Whether ``out_dir`` was generated with these arguments.

    Use it to decide whether an existing folder can be reused; the format
    version must match as well.

    Args:
        out_dir (str): Folder to check.
        num_ids, images_per_id, captions_per_image, image_size, seed: The
            arguments of :func:`generate_synth_pedes`.

    Returns:
        bool: True if the stored metadata equals the arguments.
    """
    meta = read_synth_meta(out_dir)
    if meta is None:
        return False
    num_ids, image_size = _check_args(num_ids, images_per_id,
                                      captions_per_image, image_size, seed)
    expected = _meta(num_ids, images_per_id, captions_per_image, image_size,
                     seed)
    return all(meta.get(k) == v for k, v in expected.items())
