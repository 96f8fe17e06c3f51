"""Image loading with errors that name the file."""
from typing import Optional

from mmcv.transforms import LoadImageFromFile

from mmtpr.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadPersonImage(LoadImageFromFile):
    """MMCV's ``LoadImageFromFile`` with clear errors for bad image files.

    A missing file raises FileNotFoundError and an undecodable one
    ValueError, both naming the file (MMCV raises a bare assertion for the
    latter). Arguments are those of :class:`mmcv.transforms.
    LoadImageFromFile` (e.g. ``imdecode_backend='pillow'``); images are
    loaded in BGR order, which :class:`TPRDataPreprocessor` converts.

    Example:
        >>> dict(type='LoadPersonImage')
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``."""
        path = results['img_path']
        try:
            out = super().transform(results)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"image file '{path}' does not exist") from err
        except (AssertionError, OSError, ValueError) as err:
            raise ValueError(f"cannot read image '{path}': not a decodable "
                             f'image file ({err})') from err
        if out is not None and out.get('img') is None:
            raise ValueError(f"cannot read image '{path}'")
        return out
