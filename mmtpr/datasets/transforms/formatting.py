"""Packing TPR samples for the data preprocessor."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmtpr.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackTPRInputs(BaseTransform):
    """Pack an image, its tokenized captions and its ids.

    Produces ``dict(inputs, texts, data_samples)``: ``inputs`` a uint8
    (3, H, W) tensor, ``texts`` an int64 (N, L) tensor and ``data_samples`` a
    :class:`BaseDataElement` whose metainfo holds ``meta_keys``.

    Args:
        meta_keys (sequence of str): keys copied into the data sample when
            present. The caption strings (``caption`` in training mode,
            ``captions`` in test mode) let
            :class:`~mmtpr.evaluation.TPRMetric` write them into its
            results file. Defaults to ('pid', 'person_id', 'image_id',
            'img_path', 'domain', 'caption', 'captions').

    Example:
        >>> dict(type='PackTPRInputs')
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('pid', 'person_id', 'image_id',
                                             'img_path', 'domain', 'caption',
                                             'captions')
                 ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results['img']`` and / or ``results['text']`` (a gallery
        image alone, or query captions alone, have only one of them)."""
        if 'img' not in results and 'text' not in results:
            raise KeyError("PackTPRInputs needs 'img' or 'text' (keys: "
                           f'{sorted(results)})')
        packed = {}
        if 'img' in results:
            img = results['img']
            if img.ndim == 2:
                img = img[..., None]
            packed['inputs'] = torch.from_numpy(
                np.ascontiguousarray(img.transpose(2, 0, 1)))
        meta = {k: results[k] for k in self.meta_keys if k in results}
        if 'text' in results:
            texts = torch.from_numpy(np.atleast_2d(results['text']))
            packed['texts'] = texts
            meta['num_captions'] = int(texts.shape[0])
        packed['data_samples'] = BaseDataElement(metainfo=meta)
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
