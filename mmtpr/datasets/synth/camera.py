"""Cameras of the synthetic dataset: resolution, colour cast, blur and
view point.

Real TPR datasets differ in their cameras as much as in their annotators:
surveillance footage is small, blurred, tinted by the light and often sees
people from behind. A camera is a dict of four factors, applied to every
rendered photo:

- ``scale`` (float, 0 < scale <= 1): the photo is rendered at ``scale``
  times ``image_size`` (at least 16 x 8 pixels) and up-sampled
  bilinearly to ``image_size``: fewer pixels of detail, same file size.
- ``color_cast`` (tuple[int, int, int], each in [-255, 255]): added to
  the R, G and B values of every pixel (clipped to 0..255), like a
  mis-set white balance or coloured street lighting.
- ``blur`` (float, >= 0): radius in output pixels of a Gaussian blur
  (``PIL.ImageFilter.GaussianBlur``), like defocus or motion.
- ``back_view_prob`` (float, 0 <= p <= 1): the share of photos that show
  the person from behind.

The presets (``CAMERA_PRESETS``):

- ``'standard'``: ``scale=1.0, color_cast=(0, 0, 0), blur=0.0,
  back_view_prob=0.4``. The default, and the only camera of SynthPedes
  before cameras existed.
- ``'cctv'``: a cheap surveillance camera: ``scale=0.5``, a cold
  blue-green cast ``(-14, 6, 22)``, ``blur=0.8``, 60% back views.
- ``'streetlight'``: a camera under sodium street lamps: ``scale=0.6``, a
  warm orange cast ``(28, 8, -26)``, ``blur=1.5``, 70% back views.
"""
import math
import numbers
from typing import Any, Dict, Tuple

from PIL import Image, ImageFilter

CAMERA_PRESETS: Dict[str, Dict[str, Any]] = {
    'standard': dict(scale=1.0, color_cast=(0, 0, 0), blur=0.0,
                     back_view_prob=0.4),
    'cctv': dict(scale=0.5, color_cast=(-14, 6, 22), blur=0.8,
                 back_view_prob=0.6),
    'streetlight': dict(scale=0.6, color_cast=(28, 8, -26), blur=1.5,
                        back_view_prob=0.7),
}
_MIN_RENDER_SIZE = (16, 8)


def _check_factor(key: str, value: Any) -> Any:
    """A valid, JSON-ready value of one camera factor."""
    if key == 'color_cast':
        if (not isinstance(value, (tuple, list)) or len(value) != 3
                or not all(isinstance(v, numbers.Integral)
                           and not isinstance(v, bool) and -255 <= v <= 255
                           for v in value)):
            raise ValueError('camera color_cast must be 3 ints (R, G, B) in '
                             f'[-255, 255], got {value!r}')
        return [int(v) for v in value]
    real = (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))
    if key == 'scale':
        ok, expected = real and 0 < value <= 1, 'a number in (0, 1]'
    elif key == 'blur':
        ok, expected = real and value >= 0, 'a finite number >= 0'
    else:
        ok, expected = real and 0 <= value <= 1, 'a number in [0, 1]'
    if not ok:
        raise ValueError(f'camera {key} must be {expected}, got {value!r}')
    return float(value)


def resolve_camera(camera: Any = 'standard') -> Dict[str, Any]:
    """The four factors of a camera preset or dict.

    Args:
        camera (str | dict): A key of ``CAMERA_PRESETS``, or a dict with
            any of ``scale``, ``color_cast``, ``blur`` and
            ``back_view_prob`` (see the module docstring); missing factors
            are those of ``'standard'``. Defaults to 'standard'.

    Returns:
        dict: All four factors, JSON-ready (floats, ``color_cast`` as a
        list of ints), as stored in ``synth_meta.json``.

    Raises:
        ValueError: Unknown preset, unknown key or a value out of range.
    """
    if isinstance(camera, str):
        if camera not in CAMERA_PRESETS:
            raise ValueError(f'camera must be one of {sorted(CAMERA_PRESETS)}'
                             f' or a dict, got {camera!r}')
        camera = CAMERA_PRESETS[camera]
    if not isinstance(camera, dict):
        raise ValueError('camera must be a preset name or a dict, got '
                         f'{camera!r}')
    unknown = sorted(set(camera) - set(CAMERA_PRESETS['standard']))
    if unknown:
        raise ValueError(f'unknown camera factors {unknown}; valid ones are '
                         f"{sorted(CAMERA_PRESETS['standard'])}")
    return {
        key: _check_factor(key, camera.get(key, default))
        for key, default in CAMERA_PRESETS['standard'].items()
    }


def _render_size(image_size: Tuple[int, int],
                 camera: Dict[str, Any]) -> Tuple[int, int]:
    """``(height, width)`` at which the photos of ``camera`` are drawn."""
    if camera['scale'] == 1.0:
        return image_size
    return (max(_MIN_RENDER_SIZE[0], int(round(image_size[0] *
                                               camera['scale']))),
            max(_MIN_RENDER_SIZE[1], int(round(image_size[1] *
                                               camera['scale']))))


def _apply_camera(img: Image.Image, camera: Dict[str, Any],
                  image_size: Tuple[int, int]) -> Image.Image:
    """Up-sample, blur and tint a photo drawn at :func:`_render_size`.

    Factors at their 'standard' values leave ``img`` untouched, so that the
    standard camera reproduces the photos of earlier versions exactly.
    """
    height, width = image_size
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    if camera['blur'] > 0:
        img = img.filter(ImageFilter.GaussianBlur(camera['blur']))
    if any(camera['color_cast']):
        lut = [min(255, max(0, v + offset))
               for offset in camera['color_cast'] for v in range(256)]
        img = img.point(lut)
    return img
