"""On-disk layout, metadata and argument checks of SynthPedes folders.

Holds the file names of a generated folder, the format version, the
validation of the generator's arguments and the reading and comparison of
``synth_meta.json``, which decides whether a folder can be reused.
"""
import json
import numbers
import os
from typing import Any, Dict, Optional, Tuple, Union

from .camera import resolve_camera
from .captions import _check_caption_style

SYNTH_META_FILE = 'synth_meta.json'
SYNTH_ATTR_FILE = 'synth_attributes.json'
SYNTH_FORMAT_VERSION = 1
ANNO_FILE = 'reid_raw.json'
IMG_DIR = 'imgs'
SPLITS = ('train', 'val', 'test')


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(num_ids: Any, images_per_id: Any, captions_per_image: Any,
                image_size: Any, seed: Any, caption_style: Any = 'standard',
                camera: Any = 'standard') -> Dict[str, Any]:
    """Validate the generator's arguments.

    Returns:
        dict: The settings as stored in ``synth_meta.json`` (lists, not
        tuples; ``camera`` resolved to its four factors).

    Raises:
        ValueError: naming the argument, its value and what was expected.
    """
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
    return {
        'num_ids': [int(n) for n in num_ids],
        'images_per_id': int(images_per_id),
        'captions_per_image': int(captions_per_image),
        'image_size': [int(n) for n in image_size],
        'seed': int(seed),
        'caption_style': _check_caption_style(caption_style),
        'camera': resolve_camera(camera),
    }


def _meta(settings: Dict[str, Any]) -> Dict[str, Any]:
    return {'format_version': SYNTH_FORMAT_VERSION, **settings}


# Settings added after format version 1 was first written, with the value
# that folders written before them were generated with: such a folder has
# no key for them and still matches their default.
_LATER_SETTINGS = {
    'caption_style': 'standard',
    'camera': resolve_camera('standard'),
}


def _stored_settings(meta: Dict[str, Any]) -> Dict[str, Any]:
    """``meta`` with the defaults of settings it predates filled in."""
    return {**_LATER_SETTINGS, **meta}


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


# The defaults of generate_synth_pedes, for checks of some arguments only.
_DEFAULT_ARGS: Dict[str, Any] = dict(
    num_ids=(400, 50, 50), images_per_id=4, captions_per_image=2,
    image_size=(192, 64), seed=0, caption_style='standard',
    camera='standard')


def synth_settings(**args) -> Dict[str, Any]:
    """The given generator arguments in the form ``synth_meta.json`` has.

    Tuples become lists and ``camera`` its four factors (see
    :func:`~mmtpr.datasets.synth.camera.resolve_camera`).

    Args:
        **args: Any of the data arguments of :func:`generate_synth_pedes`
            (``num_ids``, ``images_per_id``, ``captions_per_image``,
            ``image_size``, ``seed``, ``caption_style``, ``camera``).

    Returns:
        dict: The same keys with canonical values.

    Raises:
        TypeError: An unknown argument.
        ValueError: An invalid value.
    """
    unknown = sorted(set(args) - set(_DEFAULT_ARGS))
    if unknown:
        raise TypeError(f'unknown SynthPedes settings {unknown}; valid ones '
                        f'are {list(_DEFAULT_ARGS)}')
    checked = _check_args(**{**_DEFAULT_ARGS, **args})
    return {key: checked[key] for key in args}


def synth_meta_diff(out_dir: str,
                    **args) -> Optional[Dict[str, Tuple[Any, Any]]]:
    """How the settings of ``out_dir`` differ from the given ones.

    Only the given arguments are compared, by their canonical form (see
    :func:`synth_settings`). A folder written before ``caption_style`` and
    ``camera`` existed counts as generated with their defaults (its output
    is identical to theirs).

    Args:
        out_dir (str): A folder written by :func:`generate_synth_pedes`.
        **args: Arguments of :func:`generate_synth_pedes`.

    Returns:
        dict | None: ``{name: (stored, given)}`` for every differing
        argument (empty if all match), or None if ``out_dir`` has no
        readable ``synth_meta.json``.
    """
    meta = read_synth_meta(out_dir)
    wanted = synth_settings(**args)
    if not isinstance(meta, dict):
        return None
    stored = _stored_settings(meta)
    return {key: (stored.get(key), value) for key, value in wanted.items()
            if stored.get(key) != value}


def synth_meta_matches(out_dir: str,
                       num_ids: tuple = (400, 50, 50),
                       images_per_id: int = 4,
                       captions_per_image: int = 2,
                       image_size: tuple = (192, 64),
                       seed: int = 0,
                       caption_style: str = 'standard',
                       camera: Union[str, dict] = 'standard') -> bool:
    """Whether ``out_dir`` was generated with these arguments.

    Use it to decide whether an existing folder can be reused; the format
    version must match as well. ``camera`` is compared by its factors, so
    a preset matches the equal dict. A folder written before
    ``caption_style`` and ``camera`` existed matches their defaults.

    Args:
        out_dir (str): Folder to check.
        num_ids, images_per_id, captions_per_image, image_size, seed,
            caption_style, camera: The arguments of
            :func:`generate_synth_pedes`.

    Returns:
        bool: True if the stored metadata equals the arguments.

    Raises:
        ValueError: If an argument is invalid.
    """
    diff = synth_meta_diff(
        out_dir, num_ids=num_ids, images_per_id=images_per_id,
        captions_per_image=captions_per_image, image_size=image_size,
        seed=seed, caption_style=caption_style, camera=camera)
    return diff == {} and (read_synth_meta(out_dir).get('format_version')
                           == SYNTH_FORMAT_VERSION)
