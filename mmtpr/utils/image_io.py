"""Reading images that may be hostile: bounded bytes, bounded pixels.

Datasets (:class:`~mmtpr.datasets.transforms.LoadPersonImage` and the
build-time image check) and galleries (:mod:`mmtpr.apis`) read images
through these functions only:

- only regular files are images: a FIFO, a device (``/dev/zero``), a
  directory or a dangling link named ``x.jpg`` is refused before it is
  opened for reading (:func:`~mmtpr.utils.fileio.read_bounded`);
- at most ``max_bytes`` bytes are read (default
  :data:`DEFAULT_MAX_IMAGE_BYTES`);
- the pixel count is read from the header and checked against
  ``max_pixels`` (default :data:`DEFAULT_MAX_IMAGE_PIXELS`) before anything
  is decoded, so a 400-megapixel image never reaches the decoder.

Every refusal is a :class:`~mmtpr.utils.errors.DataError` (or a
``MissingFileError``) naming the file and the reason.
"""
import io
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from .errors import DataError, MMTPRError
from .fileio import read_bounded

#: Largest image file read, in bytes (64 MiB; a 384x128 JPEG has ~20 KB).
DEFAULT_MAX_IMAGE_BYTES = 64 << 20
#: Largest image decoded, in pixels (50 megapixels, e.g. 8660 x 5773).
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000


def image_size(data: bytes, path: str) -> Tuple[int, int]:
    """(width, height) from the header of the encoded image ``data``.

    Raises:
        DataError: empty data, or not an image format Pillow recognises.
    """
    if not data:
        raise DataError(f"image '{path}' is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Image.DecompressionBombError as err:
        raise DataError(f"image '{path}' is too large to decode "
                        f'({err})') from None
    except Exception as err:  # Pillow raises many kinds of errors
        raise DataError(f"'{path}' is not a readable image "
                        f'({type(err).__name__}: {err})') from None


def _check_pixels(size: Tuple[int, int], path: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise DataError(f"image '{path}' has an empty size {size}")
    if width * height > max_pixels:
        raise DataError(
            f"image '{path}' has {width}x{height} = {width * height:,} "
            f'pixels, more than the limit of {max_pixels:,} (max_pixels)')


def check_image(path: str,
                decode: bool = False,
                max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
                ) -> Optional[str]:
    """Why the image at ``path`` is unusable, or None if it is fine.

    Reads the header (and with ``decode=True`` decodes the image, which
    also catches truncated files) under the same bounds as
    :func:`read_image`.
    """
    try:
        data = read_bounded(path, max_bytes, 'image')
        size = image_size(data, path)
        _check_pixels(size, path, max_pixels)
        if decode:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
    except MMTPRError as err:
        return str(err)
    except Exception as err:  # a decoding error of Pillow
        return (f"'{path}' is not a decodable image ({type(err).__name__}: "
                f'{err})')
    return None


def read_image(path: str,
               backend: str = 'cv2',
               channel_order: str = 'bgr',
               color_type: str = 'color',
               max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read and decode an image within the bounds.

    Args:
        path (str): the image file.
        backend (str): MMCV's decoding backend: 'cv2', 'pillow',
            'turbojpeg' or 'tifffile'. Defaults to 'cv2'.
        channel_order (str): 'bgr' or 'rgb'. Defaults to 'bgr'.
        color_type (str): MMCV's flag ('color', 'grayscale', ...).
            Defaults to 'color'.
        max_bytes (int): largest file read.
        max_pixels (int): largest image decoded.

    Returns:
        np.ndarray: the (H, W, C) (or (H, W)) uint8 image.

    Raises:
        MissingFileError, UnsafeFileError, DataError: naming the file.
    """
    import mmcv
    data = read_bounded(path, max_bytes, 'image')
    _check_pixels(image_size(data, path), path, max_pixels)
    try:
        img = mmcv.imfrombytes(data, flag=color_type,
                               channel_order=channel_order, backend=backend)
    except Exception as err:  # cv2.error, OSError, AssertionError, ...
        raise DataError(f"cannot decode image '{path}' ({type(err).__name__}"
                        f': {err})') from None
    if img is None or img.size == 0:
        raise DataError(f"cannot decode image '{path}': not a decodable "
                        'image (truncated or damaged)')
    return img
