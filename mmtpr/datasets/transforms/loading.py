"""Image loading that reads only bounded regular files, with errors that
name the file."""
from typing import Optional

from mmcv.transforms import LoadImageFromFile

from mmtpr.registry import TRANSFORMS
from mmtpr.utils.errors import ConfigError
from mmtpr.utils.image_io import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    read_image,
)


@TRANSFORMS.register_module()
class LoadPersonImage(LoadImageFromFile):
    """Load ``results['img_path']`` into ``results['img']``, safely.

    MMCV's ``LoadImageFromFile`` reads whatever the path names: a FIFO
    hangs it, ``/dev/zero`` exhausts memory, a 400-megapixel file is
    decoded in full. This transform reads only regular files of at most
    ``max_bytes`` bytes and decodes only images of at most ``max_pixels``
    pixels (:func:`mmtpr.utils.image_io.read_image`); anything else, and an
    undecodable file, is an error naming the file (MMCV raises a bare
    assertion or ``cv2.error`` for some of these). Images are loaded in BGR
    order, which :class:`TPRDataPreprocessor` converts.

    Args:
        to_float32 (bool): return float32 images. Defaults to False.
        color_type (str): MMCV's decoding flag. Defaults to 'color'.
        imdecode_backend (str): 'cv2', 'pillow', 'turbojpeg' or
            'tifffile'. 'pillow' decodes (and, with ``Resize(backend=
            'pillow')``, resizes) as the papers' reference code does.
            Defaults to 'cv2'.
        max_bytes (int): largest file read. Defaults to 64 MiB.
        max_pixels (int): largest image decoded. Defaults to 50 megapixels.

    Example:
        >>> dict(type='LoadPersonImage', imdecode_backend='pillow')
    """

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 backend_args: Optional[dict] = None) -> None:
        if backend_args is not None:
            raise ConfigError('LoadPersonImage reads local files only; '
                              f'backend_args={backend_args!r} is not '
                              'supported')
        super().__init__(to_float32=to_float32, color_type=color_type,
                         imdecode_backend=imdecode_backend)
        self.max_bytes = int(max_bytes)
        self.max_pixels = int(max_pixels)

    def transform(self, results: dict) -> dict:
        """Load ``results['img_path']`` into ``results['img']``."""
        img = read_image(results['img_path'], backend=self.imdecode_backend,
                         color_type=self.color_type,
                         max_bytes=self.max_bytes,
                         max_pixels=self.max_pixels)
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
