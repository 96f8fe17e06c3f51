"""Text-to-image retrieval metric: R@k, mAP and mINP."""
import os.path as osp
from numbers import Integral
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from torch import Tensor

from mmtpr.registry import METRICS

from ..functional import (
    RankAccumulator,
    check_chunk_size,
    check_keep_topk,
    check_topk,
    rank_features,
)
from ..functional.checks import to_tensor
from .results_file import check_out_file, out_format, write_results_file

_FIELDS = ('image_feat', 'text_feats', 'pid')
DIRECTIONS = ('t2i', 'i2t')


def _as_float_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, (Tensor, np.ndarray)):
        raise TypeError(f'TPRMetric: `{name}` must be a torch.Tensor or a '
                        f'numpy array, got {type(value).__name__}.')
    return to_tensor(value, name, torch.float32).cpu()


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


def _check_directions(directions: Union[str, Sequence[str]]
                      ) -> Tuple[str, ...]:
    """Validate ``directions``; return them with 't2i' first."""
    if isinstance(directions, str):
        directions = (directions, )
    if not isinstance(directions, Sequence) or any(
            d not in DIRECTIONS for d in directions):
        raise ValueError(f'TPRMetric: `directions` must be a sequence of '
                         f'{DIRECTIONS}, got {directions!r}.')
    if 't2i' not in directions:
        raise ValueError("TPRMetric: `directions` must include 't2i' (the "
                         'benchmark protocol, reported first), got '
                         f'{tuple(directions)!r}.')
    return tuple(d for d in DIRECTIONS if d in directions)


def _sample_captions(sample: dict, num: int) -> Optional[List[str]]:
    """The caption strings of a sample (``captions`` in test mode,
    ``caption`` in training mode), or None if it carries none."""
    if sample.get('captions') is not None:
        captions = sample['captions']
        captions = [captions] if isinstance(captions, str) else captions
    elif sample.get('caption') is not None:
        captions = [sample['caption']]
    else:
        return None
    captions = [str(c) for c in captions]
    if len(captions) != num:
        raise ValueError(
            f'TPRMetric: a data sample carries {len(captions)} captions '
            f'but {num} caption features: {captions!r}.')
    return captions


def metrics_table(metrics: Dict[str, float]) -> str:
    """The metrics as a small table: one row per direction."""
    rows = {'t2i': {k: v for k, v in metrics.items()
                    if not k.startswith('i2t_')},
            'i2t': {k[len('i2t_'):]: v for k, v in metrics.items()
                    if k.startswith('i2t_')}}
    keys = list(rows['t2i'])
    lines = ['TPRMetric:', '  direction ' + ''.join(f'{k:>8}' for k in keys)]
    for name, row in rows.items():
        if row:
            lines.append(f'  {name:<9} ' + ''.join(
                f'{row[k]:8.2f}' for k in keys))
    return '\n'.join(lines)


@METRICS.register_module()
class TPRMetric(BaseMetric):
    """R@k, mAP and mINP of text-based person retrieval.

    The captions are the queries and the images the gallery: every caption
    ranks all images, and an image is relevant to a caption iff it shows
    the same person (same ``pid``). See
    :func:`mmtpr.evaluation.functional.rank` for the definitions and the
    tie rule (equal scores rank by ascending gallery index, i.e. by the
    order in which the images were processed).

    With ``directions=('t2i', 'i2t')`` it also evaluates image-to-text
    retrieval: every image ranks all captions, and a caption is relevant
    iff it describes the same person. Those metrics get the keys
    ``i2t_R1``, ..., ``i2t_mAP``, ``i2t_mINP`` and come after the
    text-to-image ones, whose keys do not change.

    The model's ``predict`` must return one data sample per gallery image;
    mmengine's evaluator hands them to :meth:`process` as dicts with

    - ``image_feat`` (Tensor): the image embedding, shape (D, );
    - ``text_feats`` (Tensor): the embeddings of the image's N captions,
      shape (N, D) with N >= 1 (a 1-D tensor counts as one caption);
    - ``pid`` (int | Tensor | np.integer): the person id;
    - optionally ``captions`` (list[str], N of them; or ``caption``, a str)
      and ``img_path`` (str), kept only for ``out_file``.

    The embeddings need not be normalised: :meth:`compute_metrics`
    L2-normalises both sides, so the similarity is the cosine similarity.
    It is computed in float32, ``chunk_size`` queries at a time, and ranked
    chunk by chunk by :func:`mmtpr.evaluation.functional.rank_features`
    (the core :func:`~mmtpr.evaluation.rank` uses too), so the full
    (Q, G) matrix is never built.

    If ``out_file`` is set, :meth:`compute_metrics` also writes the
    per-query text-to-image results there with
    :func:`mmengine.fileio.dump`, for offline analysis (the format follows
    the extension: ``.pkl`` keeps numpy arrays, ``.json`` stores lists). It
    is a dict, with Q the number of captions (queries), G the number of
    images (gallery) and k = ``min(keep_topk, G)``:

    - ``metrics`` (dict): what :meth:`compute_metrics` returns (without the
      prefix), in percent;
    - ``direction`` (str): 't2i';
    - ``query_pids`` (Q, ) and ``gallery_pids`` (G, ): person ids;
    - ``query_image_index`` (Q, ): index of the gallery image each caption
      came from (queries are the images' captions in gallery order);
    - ``topk_indices`` (Q, k): the k best gallery indices per query, best
      first, equal scores by ascending gallery index;
    - ``topk_scores`` (Q, k) float32: their cosine similarities;
    - ``topk_pids`` (Q, k): their person ids;
    - ``ap`` (Q, ) and ``inp`` (Q, ) float64: per-query AP and INP in
      [0, 1] (``100 * ap.mean()`` is ``mAP``);
    - ``first_match_rank`` (Q, ): 0-based rank of the first positive
      (``R@k`` is the percentage of queries where it is < k);
    - ``captions`` (list of Q str): only if every data sample carries its
      captions;
    - ``gallery_img_paths`` (list of G str): only if every data sample
      carries ``img_path``.

    The file is written atomically (a temporary file in the same
    directory, then renamed), its directory created if needed, and an
    existing file is replaced. The path is checked when the metric is
    built: an existing directory, or a parent that is not a writable
    directory, raises ValueError before any evaluation work. See
    ``docs/evaluation_output.md``.

    Args:
        topk (int | Sequence[int]): The cut-offs k of R@k.
            Defaults to (1, 5, 10).
        chunk_size (int): Number of queries scored and ranked at a time.
            Defaults to 1024.
        directions (Sequence[str]): 't2i' alone, or with 'i2t' for the
            image-to-text metrics too. Defaults to ('t2i', ).
        out_file (str, optional): Where to write the per-query results,
            ending with ``.pkl`` (or ``.pickle``) or ``.json``, not an
            existing directory. Defaults to None (no file).
        keep_topk (int, optional): How many gallery items per query the
            results file keeps. Defaults to None, i.e. ``max(topk)``.
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
        >>> test_evaluator = dict(type='TPRMetric', topk=(1, 5, 10),
        ...                       directions=('t2i', 'i2t'),
        ...                       out_file='work_dirs/test_results.pkl')
    """

    default_prefix: Optional[str] = 'tpr'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5, 10),
                 chunk_size: int = 1024,
                 directions: Sequence[str] = ('t2i', ),
                 out_file: Optional[str] = None,
                 keep_topk: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.topk = check_topk(topk)
        self.chunk_size = check_chunk_size(chunk_size)
        self.directions = _check_directions(directions)
        self.out_file = check_out_file(out_file)
        self.keep_topk = (max(self.topk) if keep_topk is None else
                          check_keep_topk(keep_topk))

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store the features and the person id of every image.

        With ``out_file`` set, the captions and the image path are kept
        too, when the data samples carry them.

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
            result = dict(
                image_feat=image_feat,
                text_feats=text_feats,
                pid=_as_pid(sample['pid']))
            if self.out_file is not None:
                captions = _sample_captions(sample, text_feats.shape[0])
                if captions is not None:
                    result['captions'] = captions
                if 'img_path' in sample:
                    result['img_path'] = str(sample['img_path'])
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Rank the images for every caption (and, with 'i2t', the
        captions for every image); write ``out_file`` if set.

        Args:
            results (list[dict]): The results stored by :meth:`process`,
                gathered from all ranks, one per image.

        Returns:
            dict[str, float]: ``R{k}`` for every k in ``topk``, ``mAP`` and
            ``mINP``, in percent; with 'i2t' then the same with the prefix
            ``i2t_``.
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
        keep_details = self.out_file is not None
        t2i = self._rank(queries, gallery, query_pids, gallery_pids,
                         keep_details)
        metrics = t2i.summarize()
        if 'i2t' in self.directions:
            print_log(
                f'TPRMetric: ranking {num_queries} captions for '
                f'{num_gallery} image queries (image-to-text).',
                logger='current')
            i2t = self._rank(gallery, queries, gallery_pids, query_pids)
            metrics.update(
                {f'i2t_{k}': v
                 for k, v in i2t.summarize().items()})
        if keep_details:
            self._write_results(results, metrics, t2i.details(), query_pids,
                                gallery_pids, num_captions)
        print_log(metrics_table(metrics), logger='current')
        return metrics

    def _rank(self,
              queries: Tensor,
              gallery: Tensor,
              query_pids: Tensor,
              gallery_pids: Tensor,
              keep_details: bool = False) -> RankAccumulator:
        """Rank the normalised ``gallery`` for every query, by chunks."""
        return rank_features(
            queries,
            gallery,
            query_pids,
            gallery_pids,
            topk=self.topk,
            chunk_size=self.chunk_size,
            keep_details=keep_details,
            keep_topk=self.keep_topk)

    def _write_results(self, results: List[dict], metrics: Dict[str, float],
                       details: Dict[str, np.ndarray], query_pids: Tensor,
                       gallery_pids: Tensor, num_captions: Tensor) -> None:
        """Write the per-query text-to-image results to ``out_file``."""
        gallery_pids_np = gallery_pids.numpy()
        content: Dict[str, Any] = dict(
            metrics=dict(metrics),
            direction='t2i',
            query_pids=query_pids.numpy(),
            gallery_pids=gallery_pids_np,
            query_image_index=torch.repeat_interleave(
                torch.arange(len(results)), num_captions).numpy(),
            topk_indices=details['topk_indices'],
            topk_scores=details['topk_scores'],
            topk_pids=gallery_pids_np[details['topk_indices']],
            ap=details['ap'],
            inp=details['inp'],
            first_match_rank=details['first_match_rank'])
        if all('captions' in res for res in results):
            content['captions'] = [
                caption for res in results for caption in res['captions']
            ]
        if all('img_path' in res for res in results):
            content['gallery_img_paths'] = [
                res['img_path'] for res in results
            ]
        if out_format(self.out_file) == 'json':
            content = {
                key: value.tolist() if isinstance(value, np.ndarray) else
                value
                for key, value in content.items()
            }
        write_results_file(content, self.out_file)
        print_log(
            f'TPRMetric: wrote the per-query results of {len(query_pids)} '
            f'queries to {osp.abspath(self.out_file)}',
            logger='current')
