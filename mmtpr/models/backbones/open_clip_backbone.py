"""CLIP from open_clip as a frozen (or trainable) backbone for TPR."""
import copy
import logging
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import open_clip
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmtpr.registry import MODELS, PETL
from mmtpr.utils.errors import CheckpointError, ConfigError

from ..petl import PETLModule, freeze_except_petl
from .clip_weights import (
    load_clip_state_dict,
    resize_visual_pos_embed,
    resolve_pretrained,
)
from .precision import (
    autocast_unless_enabled,
    resolve_frozen_dtype,
    store_frozen_matrices_in,
    to_petl_blocks,
    warn_if_slow_cpu_bfloat16,
)

_ACTIVATION_NAMES = {True: 'QuickGELU', False: 'GELU'}


@MODELS.register_module()
class OpenCLIPBackbone(BaseModule):
    """A CLIP model from open_clip, as the two towers of a TPR retriever.

    The model is built by open_clip (never copied): by name with
    ``open_clip.create_model`` (``'ViT-B-16'``), or from a config dict (tiny
    test models). The image size is forced to ``image_size`` (384x128 for
    TPR), and pretrained weights, if any, are loaded in ``__init__`` with the
    visual positional embedding resized to the new patch grid
    (:mod:`.clip_weights`; no code from a weights file is ever run).

    Features follow CLIP (and IRRA, docs/methods.md §0.2): the image feature
    is the CLS token after ``ln_post`` and the projection; the text feature
    is the EOT token (the largest token id) after ``ln_final`` and the
    projection. Features are not normalised here.

    CLIP's own ``logit_scale`` is never trained (the SDM head owns the
    temperature), so it is frozen even when ``freeze=False``.

    Args:
        model_name (str): an open_clip model name. Defaults to 'ViT-B-16'.
        model_cfg (dict, optional): an open_clip model config
            (``embed_dim``, ``vision_cfg``, ``text_cfg``) used instead of the
            named config, e.g. for tiny test models. Defaults to None.
        pretrained (str, optional): None for random init; a local weights
            file (OpenAI's TorchScript ``.pt``, ``.safetensors`` or a
            ``torch.save`` state dict); or an open_clip pretrained tag of
            ``model_name`` (e.g. 'openai', which needs network access unless
            open_clip's cache has it). Defaults to None.
        image_size (int | tuple): input (height, width). Defaults to
            (384, 128).
        quick_gelu (bool, optional): the activation: QuickGELU (True, what
            OpenAI's CLIP was trained with) or GELU (False). None takes
            what the weights file says (OpenAI's TorchScript archives name
            their activation; the 'openai' tag means QuickGELU), else the
            model config's. A declared value that contradicts the weights
            file is an error: the wrong activation moves features by about
            1e-2 and flips routing. Defaults to None.
        pos_embed_interpolation (str): how the visual positional embedding
            is resized when loading weights of another image size.
            'bilinear' (without antialiasing) matches IRRA. Defaults to
            'bilinear'.
        freeze (bool): freeze every CLIP parameter; only the PETL modules
            stay trainable. Defaults to True.
        train_projections (bool): with ``freeze=True``, keep CLIP's two
            projection heads (``visual.proj`` and ``text_projection``)
            trainable: the linear-probe-style baseline. Defaults to False.
        petl (list[dict], optional): PETL techniques injected into CLIP
            after the weights are loaded, in order, e.g.
            ``[dict(type='KVLoRA', rank=32), dict(type='LNAdapter')]``;
            see :mod:`mmtpr.models.petl`. Defaults to None.
        frozen_dtype (str, optional): store the frozen CLIP weight matrices
            in 'bfloat16' or 'float16' to halve their memory (with
            ``freeze=True``; see :mod:`.precision`). The towers then always
            run under ``torch.autocast`` in that dtype (the AMP optimizer
            wrapper's, or the backbone's own at test time). Defaults to
            None (float32).
        attention (str): the blocks that no PETL technique took over:
            'sdpa' converts them into mmtpr's :class:`PETLBlock` (the same
            computation, on batch-first contiguous tensors with
            ``F.scaled_dot_product_attention``), 'open_clip' keeps
            ``nn.MultiheadAttention``, whose training and autocast path
            projects a transposed input: under bfloat16 autocast on the CPU
            PyTorch runs each such projection as a batched product that
            copies the weight for every sample, which made bfloat16
            inference about 10x slower than float32 (docs/benchmarks.md).
            Defaults to 'sdpa'.
        grad_checkpointing (bool): activation checkpointing of every block
            of both towers (open_clip's: ``torch.utils.checkpoint`` with
            ``use_reentrant=False``): a block's activations, those of its
            PETL branches included, are recomputed in the backward pass
            instead of kept: less memory for one more forward of the
            blocks, the same gradients. Defaults to False.
        init_cfg (dict, optional): MMEngine init config. Defaults to None.

    Example:
        >>> backbone = dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
        ...                 pretrained='checkpoints/ViT-B-16.pt',
        ...                 quick_gelu=True, image_size=(384, 128),
        ...                 freeze=True)
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 model_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 image_size: Union[int, Sequence[int]] = (384, 128),
                 quick_gelu: Optional[bool] = None,
                 pos_embed_interpolation: str = 'bilinear',
                 freeze: bool = True,
                 train_projections: bool = False,
                 petl: Optional[List[dict]] = None,
                 frozen_dtype: Optional[str] = None,
                 attention: str = 'sdpa',
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.frozen_dtype = resolve_frozen_dtype(frozen_dtype)
        if self.frozen_dtype is not None and not freeze:
            raise ConfigError('frozen_dtype stores the frozen CLIP weights '
                              'in half precision; it needs freeze=True')
        self.model_name = model_name
        self.image_size = _as_hw(image_size)
        self.pos_embed_interpolation = pos_embed_interpolation

        if quick_gelu is None and model_cfg is not None:
            quick_gelu = model_cfg.get('quick_gelu')
        openai_tag = pretrained == 'openai'
        _choose_activation(quick_gelu, None, openai_tag)  # before fetching
        weights_path = resolve_pretrained(model_name, pretrained)
        weights = None if weights_path is None else \
            load_clip_state_dict(weights_path)
        self.quick_gelu = _choose_activation(quick_gelu, weights, openai_tag)
        self.clip = _build_clip(model_name, model_cfg, self.image_size,
                                self.quick_gelu)
        if weights is not None:
            self._load_clip_weights(weights)

        for cfg in petl or []:
            self._inject(cfg)
        self._set_blocks(attention, grad_checkpointing)
        # The PETL modules of each tower, found once: they receive the
        # batch's context and report auxiliary losses (PETLModule).
        self._petl_modules: Dict[str, Tuple[PETLModule, ...]] = {
            tower: tuple(m for m in root.modules()
                         if isinstance(m, PETLModule))
            for tower, root in (('visual', self.clip.visual),
                                ('text', self.clip.transformer))
        }

        self._set_trainable(freeze, train_projections)
        if self.frozen_dtype is not None:
            store_frozen_matrices_in(self.clip, self.frozen_dtype)

    def _set_trainable(self, freeze: bool, train_projections: bool) -> None:
        """Freeze CLIP but the PETL modules (and the projections when
        asked); CLIP's own logit scale never trains (the head owns it)."""
        self.freeze = freeze
        if freeze:
            freeze_except_petl(self.clip)
            if train_projections:
                for head in (self.clip.visual.proj,
                             self.clip.text_projection):
                    head.requires_grad_(True)
        for name in ('logit_scale', 'logit_bias'):
            param = getattr(self.clip, name, None)
            if isinstance(param, nn.Parameter):
                param.requires_grad_(False)

    def _set_blocks(self, attention: str, grad_checkpointing: bool) -> None:
        """The blocks' attention and activation checkpointing."""
        if attention not in ('sdpa', 'open_clip'):
            raise ConfigError("attention must be 'sdpa' or 'open_clip', got "
                              f'{attention!r}')
        self.attention = attention
        if attention == 'sdpa':
            to_petl_blocks(self.clip)
        self.grad_checkpointing = bool(grad_checkpointing)
        if self.grad_checkpointing:
            self.clip.set_grad_checkpointing(True)
        self._bf16_checked = set()  # 'train' / 'infer': warned once

    def _inject(self, cfg: dict) -> None:
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ConfigError(f'each petl entry must be a dict with a type, '
                              f'got {cfg!r}')
        args = dict(cfg)
        name = args.pop('type')
        technique = PETL.get(name) if isinstance(name, str) else name
        if technique is None:
            raise ConfigError(f"unknown PETL technique '{name}'; registered:"
                              f' {sorted(PETL.module_dict)}')
        technique.inject(self.clip, **args)

    def _load_clip_weights(self, weights) -> None:
        """Load CLIP weights strictly, resizing the visual positional
        embedding to this model's patch grid."""
        state_dict = dict(weights.state_dict)
        key = 'visual.positional_embedding'
        if key in state_dict and hasattr(self.clip.visual, 'grid_size'):
            state_dict[key] = resize_visual_pos_embed(
                state_dict[key], tuple(self.clip.visual.grid_size),
                self.pos_embed_interpolation)
        own = self.clip.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        shapes = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}'
                  for k, v in own.items()
                  if k in state_dict and state_dict[k].shape != v.shape]
        if missing or unexpected or shapes:
            raise CheckpointError(
                f"the CLIP weights in '{weights.source}' do not fit open_clip"
                f" '{self.model_name}' at {self.image_size}: missing "
                f'{missing[:5]} ({len(missing)} in all), unexpected '
                f'{unexpected[:5]} ({len(unexpected)} in all), other shapes '
                f'{shapes[:5]} ({len(shapes)} in all)')
        self.clip.load_state_dict(state_dict, strict=True)
        print_log('OpenCLIPBackbone: loaded CLIP weights from '
                  f'{weights.source}', logger='current')

    @property
    def embed_dim(self) -> int:
        """Dimension of the joint embedding space."""
        return int(self.clip.text_projection.shape[-1])

    @property
    def context_length(self) -> int:
        """Number of text tokens the text tower expects."""
        return int(self.clip.context_length)

    @property
    def num_domains(self) -> int:
        """How many domains the domain-aware routers know (1 without
        routers)."""
        counts = [m.num_domains for modules in self._petl_modules.values()
                  for m in modules if m.num_domains is not None]
        return min(counts) if counts else 1

    def aux_losses(self) -> List[torch.Tensor]:
        """The auxiliary losses (e.g. load balancing) that the PETL modules
        computed in the last forward, one per module that has one."""
        return [m.aux_loss for modules in self._petl_modules.values()
                for m in modules if m.aux_loss is not None]

    def _set_context(self, tower: str, domains: Optional[torch.Tensor],
                     token_mask: Optional[torch.Tensor] = None) -> None:
        modules = self._petl_modules[tower]
        if not modules:
            return
        if domains is not None and domains.numel() and (
                int(domains.min()) < 0
                or int(domains.max()) >= self.num_domains):
            raise ConfigError(
                f'domain index {int(domains.max())} out of range: the '
                f'routers have {self.num_domains} domain prompts')
        for module in modules:
            module.set_context(domains=domains, token_mask=token_mask)

    @contextmanager
    def _autocast(self, device: torch.device) -> Iterator[None]:
        with autocast_unless_enabled(self.frozen_dtype, device):
            mode = 'train' if torch.is_grad_enabled() else 'infer'
            if mode not in self._bf16_checked and device.type == 'cpu' \
                    and torch.is_autocast_enabled('cpu'):
                self._bf16_checked.add(mode)
                warn_if_slow_cpu_bfloat16(self.clip, mode == 'train')
            yield

    def encode_image(self, images: torch.Tensor,
                     domains: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, D) CLS features.

        ``domains`` (B,) selects the routers' domain prompts, if any.
        """
        self._set_context('visual', domains)
        with self._autocast(images.device):
            return self.clip.encode_image(images)

    def encode_text(self, texts: torch.Tensor,
                    domains: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(T, L) token ids -> (T, D) EOT features."""
        if texts.shape[-1] != self.context_length:
            raise ConfigError(
                f'texts have {texts.shape[-1]} tokens, the text tower expects '
                f'{self.context_length}; set the tokenizer context_length to '
                'match')
        if self._petl_modules['text']:
            # tokens up to and including EOT (the largest id) are real
            positions = torch.arange(texts.shape[-1], device=texts.device)
            valid = positions <= texts.argmax(-1, keepdim=True)
            self._set_context('text', domains, valid)
        with self._autocast(texts.device):
            return self.clip.encode_text(texts)

    def forward(self, images: torch.Tensor,
                texts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode both modalities: returns (image_feats, text_feats)."""
        return self.encode_image(images), self.encode_text(texts)


def _choose_activation(declared: Optional[bool], weights,
                       openai_tag: bool) -> bool:
    """QuickGELU or not, from the declaration and what the weights say."""
    said, source = None, None
    if weights is not None and weights.activation is not None:
        said, source = weights.activation == 'quick_gelu', weights.source
    elif openai_tag:
        said, source = True, "the 'openai' tag"
    if declared is not None and said is not None and bool(declared) != said:
        raise ConfigError(
            f'model.backbone.quick_gelu={bool(declared)} declares '
            f'{_ACTIVATION_NAMES[bool(declared)]}, but {source} was trained '
            f'with {_ACTIVATION_NAMES[said]}; set quick_gelu={said} (or '
            'leave it None to follow the weights)')
    if declared is not None:
        return bool(declared)
    if said is not None:
        return said
    if weights is not None:
        print_log(
            f"OpenCLIPBackbone: '{weights.source}' does not say which "
            'activation its model used; building GELU. Set '
            'model.backbone.quick_gelu=True for OpenAI weights.',
            logger='current', level=logging.WARNING)
    return False


class _NoRandomInitWarning(logging.Filter):
    # open_clip warns on the root logger that it loaded no weights; mmtpr
    # loads them itself right after building.
    def filter(self, record: logging.LogRecord) -> bool:
        return 'No pretrained weights loaded' not in record.getMessage()


def _build_clip(model_name: str, model_cfg: Optional[dict],
                image_size: Tuple[int, int], quick_gelu: bool) -> nn.Module:
    if model_cfg is None:
        if open_clip.get_model_config(model_name) is None:
            raise ConfigError(
                f"unknown open_clip model '{model_name}'; available: "
                f'{", ".join(open_clip.list_models())}')
        quiet = _NoRandomInitWarning()
        logging.getLogger().addFilter(quiet)
        try:
            return open_clip.create_model(
                model_name, pretrained=None, force_quick_gelu=quick_gelu,
                force_image_size=image_size,
                device=torch.get_default_device())
        finally:
            logging.getLogger().removeFilter(quiet)
    cfg = copy.deepcopy(dict(model_cfg))
    missing = {'embed_dim', 'vision_cfg', 'text_cfg'} - set(cfg)
    if missing:
        raise ConfigError(f'model_cfg lacks {sorted(missing)}; expected an '
                          'open_clip config with embed_dim, vision_cfg and '
                          'text_cfg')
    cfg['vision_cfg'] = dict(cfg['vision_cfg'], image_size=image_size)
    cfg.pop('quick_gelu', None)
    custom_text = cfg.pop('custom_text', False) or \
        'hf_model_name' in cfg['text_cfg']
    cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    return cls(**cfg, quick_gelu=quick_gelu)


def _as_hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ConfigError(f'image_size must be an int or (height, width), '
                          f'got {size}')
    return size
