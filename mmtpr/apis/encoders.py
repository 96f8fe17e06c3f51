"""What turns a preprocessed batch into features, for the inferencer.

The inferencer prepares batches exactly as a dataloader would (the
config's test pipeline, collated) and hands them to an encoder.
:class:`ModelEncoder` runs the model through its own API
(``data_preprocessor`` then ``model(..., mode='tensor')``, which routes by
the samples' domains); other backends (e.g. ONNX Runtime) implement the
same two methods: :class:`OnnxEncoder` runs the ONNX export of a model
with ONNX Runtime.
"""
import hashlib
import os.path as osp
from typing import Optional

import torch
import torch.nn as nn
from mmengine.config import Config

from mmtpr.models.data_preprocessors import TPRDataPreprocessor
from mmtpr.models.retrievers import TPRRetriever
from mmtpr.registry import MODELS
from mmtpr.utils.errors import CheckpointError, ConfigError
from mmtpr.utils.fileio import check_regular_file, sha256_file
from mmtpr.utils.model_record import (
    META_KEY,
    model_record,
    record_differences,
)


class ModelEncoder:
    """Encode batches with a built model (PyTorch).

    Args:
        model (nn.Module): a :class:`~mmtpr.models.TPRRetriever`, on its
            device, in eval mode.
    """

    backend = 'pytorch'

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _encode(self, batch: dict, index: int) -> torch.Tensor:
        data = self.model.data_preprocessor(batch, False)
        return self.model(**data, mode='tensor')[index]

    def images(self, batch: dict) -> torch.Tensor:
        """(B, D) features of a batch of images (``inputs``)."""
        return self._encode(batch, 0)

    def texts(self, batch: dict) -> torch.Tensor:
        """(T, D) features of a batch of tokenized captions (``texts``)."""
        return self._encode(batch, 1)

    @property
    def num_domains(self) -> Optional[int]:
        return self.model.backbone.num_domains


class OnnxEncoder:
    """Encode batches with the ONNX export of a model (ONNX Runtime, CPU).

    Batches go through the config's data preprocessor (only
    :class:`~mmtpr.models.TPRDataPreprocessor` is built: no model, no CLIP
    weights) and then through ``image_encoder.onnx`` / ``text_encoder.onnx``
    of ``onnx_dir`` (written by ``tools/export.py ... --onnx``), with the
    samples' domains when the graphs take them. Each file must have the
    SHA-256 that ``onnx.json`` records; :attr:`digest` identifies them.

    Args:
        onnx_dir (str): the folder of the export.
        cfg (Config): the config (its ``model.data_preprocessor`` and, to
            refuse another model, ``model.backbone``).
        threads (int, optional): ONNX Runtime's ``intra_op_num_threads``.
            None keeps its default (all cores).
    """

    backend = 'onnxruntime'

    def __init__(self, onnx_dir: str, cfg: Config,
                 threads: Optional[int] = None) -> None:
        from .export import onnx as onnx_export
        self.meta = onnx_export.read_onnx_meta(onnx_dir)
        _check_record(self.meta, cfg, onnx_dir)
        preprocessor_cfg = dict(cfg.model.get('data_preprocessor') or
                                dict(type='TPRDataPreprocessor'))
        self.preprocessor = MODELS.build(preprocessor_cfg)
        if not isinstance(self.preprocessor, TPRDataPreprocessor):
            raise ConfigError('the onnxruntime backend supports '
                              'model.data_preprocessor of type '
                              'TPRDataPreprocessor, got '
                              f'{preprocessor_cfg.get("type")}')
        self.sessions, digests = {}, []
        for tower, info in sorted(self.meta['files'].items()):
            path = osp.join(onnx_dir, info['file'])
            check_regular_file(path, 'ONNX file')
            digest = sha256_file(path)
            if digest != info['sha256']:
                raise CheckpointError(
                    f"'{path}' is not the file that onnx.json describes "
                    '(another SHA-256); export the model again')
            self.sessions[tower] = onnx_export.ort_session(path, threads)
            digests.append(digest)
        self.digest = hashlib.sha256(':'.join(digests).encode()).hexdigest()

    @classmethod
    def beside(cls, checkpoint: Optional[str], onnx_dir: Optional[str],
               cfg: Config, device: str = 'cpu',
               threads: Optional[int] = None) -> 'OnnxEncoder':
        """The encoder of ``onnx_dir``, by default the folder of the
        exported ``checkpoint``; ``device`` must be the CPU."""
        if str(device) != 'cpu':
            raise ConfigError('the onnxruntime backend runs on the CPU, got '
                              f'device={device!r}')
        if onnx_dir is None and checkpoint is None:
            raise ConfigError('the onnxruntime backend needs onnx_dir (or '
                              'the exported checkpoint beside the files)')
        return cls(onnx_dir or osp.dirname(osp.abspath(checkpoint)), cfg,
                   threads)

    @property
    def device(self) -> torch.device:
        return torch.device('cpu')

    @property
    def num_domains(self) -> int:
        return int(self.meta['num_domains'])

    def _domains(self, data: dict, count: int, tower: str) -> torch.Tensor:
        """The (count,) domains of a preprocessed batch, checked as the
        backbone checks them."""
        domains = TPRRetriever._domains(
            data.get('data_samples'),
            data['text_counts'] if tower == 'text' else None,
            torch.device('cpu'))[0 if tower == 'image' else 1]
        if domains is None:
            return torch.zeros(count, dtype=torch.long)
        if self.meta['checks_domains'] and domains.numel() and (
                int(domains.min()) < 0
                or int(domains.max()) >= self.num_domains):
            raise ConfigError(
                f'domain index {int(domains.max())} out of range: the '
                f'routers have {self.num_domains} domain prompts')
        return domains.long()

    def _run(self, tower: str, inputs: torch.Tensor,
             data: dict) -> torch.Tensor:
        info = self.meta['files'][tower]
        feed = {info['inputs'][0]: inputs.numpy()}
        domains = self._domains(data, inputs.shape[0], tower)
        if 'domains' in info['inputs']:
            feed['domains'] = domains.numpy()
        features = self.sessions[tower].run(['features'], feed)[0]
        return torch.from_numpy(features)

    def images(self, batch: dict) -> torch.Tensor:
        """(B, D) features of a batch of images (``inputs``)."""
        data = self.preprocessor(batch, False)
        images = data['images'].float().contiguous()
        height, width = self.meta['image_size']
        if tuple(images.shape[-2:]) != (height, width):
            raise ConfigError(
                f'images are {tuple(images.shape[-2:])}, the ONNX image '
                f'encoder takes {(height, width)}; use the pipeline of the '
                'exported config')
        return self._run('image', images, data)

    def texts(self, batch: dict) -> torch.Tensor:
        """(T, D) features of a batch of tokenized captions (``texts``)."""
        data = self.preprocessor(batch, False)
        texts = data['texts']
        if texts.shape[-1] != self.meta['context_length']:
            raise ConfigError(
                f'texts have {texts.shape[-1]} tokens, the ONNX text encoder '
                f"expects {self.meta['context_length']}; set the tokenizer "
                'context_length to match')
        return self._run('text', texts.long().contiguous(), data)


def _check_record(meta: dict, cfg: Config, onnx_dir: str) -> None:
    """Refuse a config whose backbone is not the exported model's."""
    saved = meta.get(META_KEY)
    if not isinstance(saved, dict):
        return
    problems = record_differences(saved, model_record(cfg.model),
                                  'backbone')
    if problems:
        raise ConfigError(
            f"the ONNX export in '{onnx_dir}' comes from another model "
            'config: ' + '; '.join(problems[:6]).replace(
                'in the checkpoint', 'in the export') + '. Use the '
            'config.py written beside it.')
