"""Text-to-image retrieval metric: R@k, mAP and mINP."""
from numbers import Integral
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from torch import Tensor

from mmtpr.registry import METRICS

from ..functional.rank import (
    _check_chunk_size,
    _check_has_positives,
    _check_topk,
    _RankAccumulator,
)

_FIELDS = ('image_feat', 'text_feats', 'pid')


def _as_float_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    elif not isinstance(value, Tensor):
        raise TypeError(f'TPRMetric: `{name}` must be a torch.Tensor or a '
                        f'numpy array, got {type(value).__name__}.')
    return value.detach().to(device='cpu', dtype=torch.float32)


def _as_pid(value: Any) -> int:
    if isinstance(value, (Tensor, np.ndarray)):
        if value.ndim != 0 and tuple(value.shape) != (1, ):
            raise ValueError('TPRMetric: `pid` must be a single integer, '
                             f'got shape {tuple(value.shape)}.')
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError('TPRMetric: `pid` must be an integer, got '
                        f'{value!r}.')
    return int(value)


@METRICS.register_module()
class TPRMetric(BaseMetric):
    """R@k, mAP and mINP of text-based person retrieval.

    The captions are the queries and the images the gallery: every caption
    ranks all images, and an image is relevant to a caption iff it shows
    the same person (same ``pid``). See
    :func:`mmtpr.evaluation.functional.rank` for the definitions and the
    tie rule (equal scores rank by ascending gallery index, i.e. by the
    order in which the images were processed).

    The model's ``predict`` must return one data sample per gallery image;
    mmengine's evaluator hands them to :meth:`process` as dicts with

    - ``image_feat`` (Tensor): the image embedding, shape (D, );
    - ``text_feats`` (Tensor): the embeddings of the image's N captions,
      shape (N, D) with N >= 1 (a 1-D tensor counts as one caption);
    - ``pid`` (int | Tensor | np.integer): the person id.

    The embeddings need not be normalised: :meth:`compute_metrics`
    L2-normalises both sides, so the similarity is the cosine similarity.
    It is computed in float32, ``chunk_size`` queries at a time, and ranked
    chunk by chunk, so the full (Q, G) matrix is never built.

    Args:
        topk (int | Sequence[int]): The cut-offs k of R@k.
            Defaults to (1, 5, 10).
        chunk_size (int): Number of queries scored and ranked at a time.
            Defaults to 1024.
        collect_device (str): Device used to collect the results from the
            ranks in distributed evaluation, 'cpu' or 'gpu'.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            None, which means ``default_prefix``, i.e. 'tpr' (the logged
            keys are then ``tpr/R1``, ``tpr/mAP``, ...).
        collect_dir (str, optional): Directory used to collect the results
            when ``collect_device='cpu'``. Defaults to None.

    Example:
        >>> # In a config:
        >>> val_evaluator = dict(type='TPRMetric')
        >>> test_evaluator = dict(type='TPRMetric', topk=(1, 5, 10))
    """

    default_prefix: Optional[str] = 'tpr'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5, 10),
                 chunk_size: int = 1024,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.topk = _check_topk(topk)
        self.chunk_size = _check_chunk_size(chunk_size)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store the features and the person id of every image.

        Args:
            data_batch (Any): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): The model's outputs, one per
                image, with the fields ``image_feat``, ``text_feats`` and
                ``pid``.
        """
        for index, sample in enumerate(data_samples):
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            for field in _FIELDS:
                if field not in sample:
                    raise KeyError(
                        f'TPRMetric: a data sample (index {index} in its '
                        f'batch) lacks the field {field!r}; the keys '
                        f'present are {sorted(map(str, sample.keys()))}.')
            image_feat = _as_float_tensor(sample['image_feat'], 'image_feat')
            text_feats = _as_float_tensor(sample['text_feats'], 'text_feats')
            if text_feats.dim() == 1:
                text_feats = text_feats[None]
            if image_feat.dim() != 1:
                raise ValueError('TPRMetric: `image_feat` must have shape '
                                 f'(D,), got {tuple(image_feat.shape)}.')
            if (text_feats.dim() != 2 or text_feats.shape[0] == 0
                    or text_feats.shape[1] != image_feat.shape[0]):
                raise ValueError(
                    'TPRMetric: `text_feats` must have shape (N, D) with '
                    f'N >= 1 and D = {image_feat.shape[0]} (the size of '
                    f'`image_feat`), got {tuple(text_feats.shape)}.')
            self.results.append(
                dict(
                    image_feat=image_feat,
                    text_feats=text_feats,
                    pid=_as_pid(sample['pid'])))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Rank the images for every caption.

        Args:
            results (list[dict]): The results stored by :meth:`process`,
                gathered from all ranks, one per image.

        Returns:
            dict[str, float]: ``R{k}`` for every k in ``topk``, ``mAP`` and
            ``mINP``, in percent.
        """
        if len(results) == 0:
            raise ValueError('TPRMetric: no results to evaluate; did the '
                             'model return any data sample?')
        dims = {int(res['image_feat'].shape[-1]) for res in results}
        if len(dims) != 1:
            raise ValueError('TPRMetric: the features of the samples have '
                             f'different sizes: {sorted(dims)}.')
        gallery = torch.stack([res['image_feat'] for res in results])
        gallery_pids = torch.tensor([res['pid'] for res in results],
                                    dtype=torch.int64)
        queries = torch.cat([res['text_feats'] for res in results])
        num_captions = torch.tensor(
            [res['text_feats'].shape[0] for res in results])
        query_pids = torch.repeat_interleave(gallery_pids, num_captions)
        num_queries, num_gallery = queries.shape[0], gallery.shape[0]
        print_log(
            f'TPRMetric: ranking {num_gallery} gallery images for '
            f'{num_queries} text queries.',
            logger='current')

        gallery = F.normalize(gallery.float(), dim=1)
        queries = F.normalize(queries.float(), dim=1)
        _check_has_positives(query_pids, gallery_pids)
        accumulator = _RankAccumulator(gallery_pids, self.topk)
        for start in range(0, num_queries, self.chunk_size):
            end = min(start + self.chunk_size, num_queries)
            similarity = queries[start:end] @ gallery.T
            accumulator.update(
                similarity, query_pids[start:end], offset=start)
        return accumulator.summarize()
