"""The text-based person retriever: two CLIP towers and a loss head."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmtpr.registry import MODELS


@MODELS.register_module()
class TPRRetriever(BaseModel):
    """Text-based person retrieval with a dual-encoder backbone.

    Follows MMEngine's three modes:

    - ``loss``: training pairs (one caption per image) -> dict of losses
      from the head (``loss_sdm``, ...).
    - ``predict``: test samples (one image with all its captions) -> the data
      samples with ``image_feat`` (D,) and ``text_feats`` (N_i, D) set, for
      :class:`mmtpr.evaluation.TPRMetric`.
    - ``tensor``: raw ``(image_feats, text_feats)``.

    Args:
        backbone (dict): config of the dual encoder, e.g.
            :class:`OpenCLIPBackbone`.
        head (dict): config of the loss head, e.g. :class:`SDMHead`.
        data_preprocessor (dict, optional): defaults to
            ``dict(type='TPRDataPreprocessor')``.
        aux_loss (dict, optional): loss over the auxiliary terms that PETL
            modules produce (e.g. ``dict(type='LoadBalanceLoss',
            loss_weight=0.5)`` for DM-Adapter), reported as its
            ``loss_name``. Defaults to None.
        init_cfg (dict, optional): MMEngine init config.

    Example:
        >>> model = dict(
        ...     type='TPRRetriever',
        ...     backbone=dict(type='OpenCLIPBackbone', model_name='ViT-B-16'),
        ...     head=dict(type='SDMHead', temperature=0.02),
        ...     data_preprocessor=dict(type='TPRDataPreprocessor'))
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 data_preprocessor: Optional[dict] = None,
                 aux_loss: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='TPRDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.aux_loss = MODELS.build(aux_loss) if aux_loss else None

    def extract_feat(self,
                     images: Optional[torch.Tensor] = None,
                     texts: Optional[torch.Tensor] = None,
                     domains: Optional[torch.Tensor] = None,
                     text_domains: Optional[torch.Tensor] = None
                     ) -> Tuple[Optional[torch.Tensor],
                                Optional[torch.Tensor]]:
        """(B, 3, H, W) images and / or (T, L) captions -> their (B, D) and
        (T, D) features (None for a modality that is not given).

        ``domains`` / ``text_domains`` give each image / caption's domain
        index for domain-aware routers; None means domain 0.
        """
        image_feats = None if images is None else \
            self.backbone.encode_image(images, domains)
        text_feats = None if texts is None else \
            self.backbone.encode_text(texts, text_domains)
        return image_feats, text_feats

    @staticmethod
    def _domains(data_samples: Optional[List[BaseDataElement]],
                 text_counts: Optional[Sequence[int]],
                 device: torch.device):
        """(image_domains (B,), text_domains (T,)) from the samples'
        ``domain`` (a sample of N_i captions gives its domain to each), or
        (None, None) when no sample has one."""
        if not data_samples or not any('domain' in s for s in data_samples):
            return None, None
        domains = torch.tensor([int(s.get('domain', 0)) for s in
                                data_samples], device=device)
        counts = [1] * len(data_samples) if text_counts is None else \
            list(text_counts)
        return domains, torch.repeat_interleave(
            domains, torch.tensor(counts, device=device))

    def forward(self,
                images: Optional[torch.Tensor] = None,
                texts: Optional[torch.Tensor] = None,
                text_counts: Optional[Sequence[int]] = None,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        """Dispatch to :meth:`loss`, :meth:`predict` or raw features.

        ``mode='tensor'`` returns ``(image_feats, text_feats)`` for the
        modalities given (either may be None, e.g. to encode a gallery or
        queries alone), routed by the samples' domains.
        """
        if mode == 'loss':
            return self.loss(images, texts, text_counts, data_samples)
        if mode == 'predict':
            return self.predict(images, texts, text_counts, data_samples)
        if mode == 'tensor':
            if images is None and texts is None:
                raise ValueError("mode='tensor' needs images or texts")
            device = (images if images is not None else texts).device
            domains, text_domains = self._domains(data_samples, text_counts,
                                                  device)
            return self.extract_feat(images, texts, domains, text_domains)
        raise ValueError(f"invalid mode '{mode}'; expected 'loss', "
                         "'predict' or 'tensor'")

    @staticmethod
    def _pids(data_samples: Optional[List[BaseDataElement]],
              device: torch.device) -> torch.Tensor:
        if not data_samples:
            raise ValueError('loss mode needs data_samples with person ids')
        try:
            pids = [int(sample.pid) for sample in data_samples]
        except AttributeError as err:
            raise KeyError("a data sample has no 'pid'; pack samples with "
                           'PackTPRInputs') from err
        return torch.tensor(pids, device=device)

    def loss(self, images: torch.Tensor, texts: torch.Tensor,
             text_counts: Optional[Sequence[int]],
             data_samples: List[BaseDataElement]
             ) -> Dict[str, torch.Tensor]:
        """Losses of a batch of aligned (image, caption) pairs."""
        if texts.shape[0] != images.shape[0] or (
                text_counts is not None and any(n != 1 for n in text_counts)):
            raise ValueError(
                'training needs exactly one caption per image, got '
                f'{texts.shape[0]} captions for {images.shape[0]} images; '
                'build the training dataset with test_mode=False')
        domains, text_domains = self._domains(data_samples, None,
                                              images.device)
        image_feats, text_feats = self.extract_feat(images, texts, domains,
                                                    text_domains)
        pids = self._pids(data_samples, image_feats.device)
        losses = self.head.loss(image_feats, text_feats, pids)
        if self.aux_loss is not None:
            aux = self.backbone.aux_losses()
            if not aux:
                raise ValueError('aux_loss is set but no PETL module of the '
                                 'backbone produces an auxiliary loss')
            losses[self.aux_loss.loss_name] = self.aux_loss(aux)
        return losses

    def predict(self, images: torch.Tensor, texts: torch.Tensor,
                text_counts: Optional[Sequence[int]],
                data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        """Features of each image and of its captions, per data sample."""
        if text_counts is None:
            text_counts = [1] * images.shape[0]
        if len(text_counts) != images.shape[0] or \
                sum(text_counts) != texts.shape[0]:
            raise ValueError(
                f'text_counts {list(text_counts)} do not match '
                f'{images.shape[0]} images and {texts.shape[0]} captions')
        domains, text_domains = self._domains(data_samples, text_counts,
                                              images.device)
        image_feats, text_feats = self.extract_feat(images, texts, domains,
                                                    text_domains)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(images))]
        per_image = torch.split(text_feats, list(text_counts))
        for sample, image_feat, feats in zip(data_samples, image_feats,
                                             per_image):
            sample.set_data(dict(image_feat=image_feat.detach(),
                                 text_feats=feats.detach()))
        return data_samples


