"""CLIP from open_clip as a frozen (or trainable) backbone for TPR."""
import copy
import math
import os
import os.path as osp
import zipfile
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Tuple, Union

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmtpr.registry import MODELS, PETL

from ..petl import freeze_except_petl

# OpenAI's TorchScript archives keep these non-weight entries in their
# state dict; open_clip's CLIP has no such buffers.
_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size')
_WEIGHT_SUFFIXES = ('.pt', '.pth', '.bin', '.ckpt', '.safetensors')


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (e.g. OpenAI's ViT-B-16.pt).

    TorchScript zips hold the module's code under ``<name>/code/``; plain
    ``torch.save`` zips do not.
    """
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any('/code/' in name for name in archive.namelist())


def load_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a CLIP state dict from a local file.

    Accepts OpenAI's TorchScript archives, ``.safetensors`` files, and
    ``torch.save`` files holding a state dict (optionally nested under
    ``state_dict`` / ``model`` and prefixed with ``module.``). Plain files are
    read with ``weights_only=True``.

    Args:
        path (str): the weights file.

    Returns:
        dict: parameter name to tensor, in open_clip's naming.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(_missing_weights_message(path))
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state_dict = load_file(path, device='cpu')
    elif is_torchscript_archive(path):
        state_dict = torch.jit.load(path, map_location='cpu').state_dict()
    else:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
        for key in ('state_dict', 'model'):
            if isinstance(state_dict, dict) and key in state_dict and \
                    isinstance(state_dict[key], dict):
                state_dict = state_dict[key]
    if not isinstance(state_dict, dict) or not state_dict:
        raise ValueError(f"'{path}' holds no CLIP state dict (found "
                         f'{type(state_dict).__name__})')
    state_dict = {(k[len('module.'):] if k.startswith('module.') else k): v
                  for k, v in state_dict.items()}
    for key in _OPENAI_EXTRA_KEYS:
        state_dict.pop(key, None)
    return state_dict


def resize_visual_pos_embed(pos_embed: torch.Tensor,
                            grid_size: Tuple[int, int],
                            interpolation: str = 'bilinear') -> torch.Tensor:
    """Resize a ViT positional embedding (1 + h*w, D) to a new patch grid.

    The class-token row is kept; the patch rows are taken as a square grid
    (as in every released CLIP) unless they already match ``grid_size``, and
    interpolated with ``align_corners=False`` and no antialiasing (IRRA's
    ``F.interpolate(mode='bilinear')``). open_clip's own helper compares
    only sequence lengths, so it would skip e.g. 4x4 -> 8x2; this one
    compares grids.
    """
    cls_row, patches = pos_embed[:1], pos_embed[1:]
    num = patches.shape[0]
    new_h, new_w = grid_size
    side = math.isqrt(num)
    if side * side == num:
        old_h, old_w = side, side
    elif num == new_h * new_w:
        old_h, old_w = new_h, new_w
    else:
        raise ValueError(
            f'cannot resize a positional embedding of {num} patch rows (not '
            f'a square grid) to a {new_h}x{new_w} grid')
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    grid = patches.reshape(1, old_h, old_w, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new_h, new_w),
                         mode=interpolation, align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(new_h * new_w, -1)
    return torch.cat([cls_row, patches.to(pos_embed.dtype)])


def _missing_weights_message(path: str) -> str:
    return (
        f"CLIP weights file '{path}' does not exist. mmtpr cannot download "
        'weights at run time: fetch them once and point `pretrained` at the '
        "file. OpenAI's ViT-B/16 (a TorchScript archive, used by the papers) "
        'is listed in open_clip as `open_clip.get_pretrained_cfg("ViT-B-16", '
        '"openai")["url"]`; open_clip checkpoints (.bin / .safetensors) come '
        'from the Hugging Face hub (e.g. timm/vit_base_patch16_clip_224.'
        'openai). Alternatively pass an open_clip tag such as '
        "pretrained='openai' on a machine with network access.")


@MODELS.register_module()
class OpenCLIPBackbone(BaseModule):
    """A CLIP model from open_clip, as the two towers of a TPR retriever.

    The model is built by open_clip (never copied): by name from open_clip's
    model configs (``'ViT-B-16'``) or from a config dict (tiny test models).
    The image size is forced to ``image_size`` (384x128 for TPR), and
    pretrained weights, if any, are loaded in ``__init__`` with the visual
    positional embedding resized to the new patch grid.

    Features follow CLIP (and IRRA, see methods.md 0.2): the image feature is
    the CLS token after ``ln_post`` and the projection; the text feature is
    the EOT token (the largest token id, found by ``argmax``) after
    ``ln_final`` and the projection. Features are not normalised here.

    CLIP's own ``logit_scale`` is never trained (the SDM head owns the
    temperature), so it is frozen even when ``freeze=False``.

    Args:
        model_name (str): an open_clip model name. Defaults to 'ViT-B-16'.
        model_cfg (dict, optional): an open_clip model config
            (``embed_dim``, ``vision_cfg``, ``text_cfg``) used instead of the
            named config, e.g. for tiny test models. Defaults to None.
        pretrained (str, optional): None for random init; a local weights
            file (OpenAI TorchScript ``.pt``, ``.safetensors`` or a
            ``torch.save`` state dict); or an open_clip pretrained tag of
            ``model_name`` (e.g. 'openai', downloaded by open_clip).
            Defaults to None.
        image_size (int | tuple): input (height, width). Defaults to
            (384, 128).
        quick_gelu (bool, optional): use QuickGELU as OpenAI's weights
            require. None chooses True for the 'openai' tag and for
            TorchScript archives, else the model config's value.
            Defaults to None.
        pos_embed_interpolation (str): how the visual positional embedding
            is resized when loading weights of another image size.
            'bilinear' (without antialiasing) matches IRRA. Defaults to
            'bilinear'.
        freeze (bool): freeze every CLIP parameter; only the PETL modules
            stay trainable. Defaults to True.
        petl (list[dict], optional): PETL techniques injected into CLIP
            after the weights are loaded, in order, e.g.
            ``[dict(type='KVLoRA', rank=32), dict(type='LNAdapter')]``;
            see :mod:`mmtpr.models.petl`. Defaults to None.
        frozen_dtype (str, optional): store the frozen CLIP weight matrices
            (linear, convolution and attention projections, ~83 % of
            ViT-B/16's weights) in 'bfloat16' or 'float16' to halve their
            memory (with ``freeze=True``); embeddings, norms, biases and the
            trainable PETL parameters stay float32.
            The towers then always run under ``torch.autocast`` in that
            dtype (the AMP optimizer wrapper's autocast, or the backbone's
            own at test time). Defaults to None (float32).
        init_cfg (dict, optional): MMEngine init config. Defaults to None.

    Example:
        >>> backbone = dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
        ...                 pretrained='checkpoints/ViT-B-16.pt',
        ...                 image_size=(384, 128), freeze=True)
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 model_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 image_size: Union[int, Sequence[int]] = (384, 128),
                 quick_gelu: Optional[bool] = None,
                 pos_embed_interpolation: str = 'bilinear',
                 freeze: bool = True,
                 petl: Optional[List[dict]] = None,
                 frozen_dtype: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if frozen_dtype not in _FROZEN_DTYPES:
            raise ValueError('frozen_dtype must be one of '
                             f'{sorted(_FROZEN_DTYPES, key=str)}, got '
                             f'{frozen_dtype!r}')
        if frozen_dtype is not None and not freeze:
            raise ValueError('frozen_dtype stores the frozen CLIP weights in '
                             'half precision; it needs freeze=True')
        self.model_name = model_name
        self.image_size = _as_hw(image_size)
        self.pos_embed_interpolation = pos_embed_interpolation

        weights_path = self._resolve_pretrained(model_name, pretrained)
        if quick_gelu is None:
            quick_gelu = pretrained == 'openai' or (
                weights_path is not None
                and is_torchscript_archive(weights_path))
        self.clip = self._build_clip(model_name, model_cfg, self.image_size,
                                     quick_gelu)
        if weights_path is not None:
            self.load_clip_weights(weights_path)

        for cfg in petl or []:
            self._inject(cfg)
        # PETL modules that take per-batch router context (domains, token
        # masks) and produce auxiliary losses; found once, not per forward.
        self._routers = {
            tower: tuple(m for m in root.modules()
                         if hasattr(m, 'set_context'))
            for tower, root in (('visual', self.clip.visual),
                                ('text', self.clip.transformer))
        }

        self.freeze = freeze
        if freeze:
            freeze_except_petl(self.clip)
        for name in ('logit_scale', 'logit_bias'):
            param = getattr(self.clip, name, None)
            if isinstance(param, nn.Parameter):
                param.requires_grad_(False)
        self.frozen_dtype = _FROZEN_DTYPES[frozen_dtype]
        if self.frozen_dtype is not None:
            self._store_frozen_matrices_in(self.frozen_dtype)

    def _store_frozen_matrices_in(self, dtype: torch.dtype) -> None:
        """Cast the frozen weight matrices (linear, convolution and
        attention projections: the bulk of CLIP) to ``dtype``.

        Embedding tables, positional embeddings, norms and biases stay
        float32, so that the residual stream keeps float32 precision as
        under AMP: autocast casts exactly these matrices to ``dtype`` for
        the matmuls anyway, so training numerics are those of AMP with
        float32 weights.
        """
        tables = {id(m.weight) for m in self.clip.modules()
                  if isinstance(m, nn.Embedding)}
        for name, param in self.clip.named_parameters():
            if (param.requires_grad or param.dim() < 2
                    or id(param) in tables
                    or 'positional_embedding' in name):
                continue
            param.data = param.data.to(dtype)
        # open_clip casts the text tower's input embeddings to the dtype of
        # its first block's weights; keep them (and so the residual stream)
        # float32, as with float32 weights under autocast
        text = getattr(self.clip, 'transformer', None)
        if text is not None and hasattr(text, 'get_cast_dtype'):
            text.get_cast_dtype = _float32

    @contextmanager
    def _autocast(self, device: torch.device):
        """Autocast to ``frozen_dtype`` unless autocast is already on."""
        if (self.frozen_dtype is None
                or torch.is_autocast_enabled(device.type)):
            yield
            return
        with torch.autocast(device_type=device.type,
                            dtype=self.frozen_dtype):
            yield

    def _inject(self, cfg: dict) -> None:
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(f'each petl entry must be a dict with a type, '
                            f'got {cfg!r}')
        args = dict(cfg)
        name = args.pop('type')
        technique = PETL.get(name) if isinstance(name, str) else name
        if technique is None:
            raise KeyError(f"unknown PETL technique '{name}'; registered: "
                           f'{sorted(PETL.module_dict)}')
        technique.inject(self.clip, **args)

    @staticmethod
    def _build_clip(model_name: str, model_cfg: Optional[dict],
                    image_size: Tuple[int, int],
                    quick_gelu: bool) -> nn.Module:
        if model_cfg is None:
            model_cfg = open_clip.get_model_config(model_name)
            if model_cfg is None:
                raise KeyError(
                    f"unknown open_clip model '{model_name}'; available: "
                    f'{", ".join(open_clip.list_models())}')
        cfg = copy.deepcopy(dict(model_cfg))
        missing = {'embed_dim', 'vision_cfg', 'text_cfg'} - set(cfg)
        if missing:
            raise KeyError(f'model_cfg lacks {sorted(missing)}; expected an '
                           'open_clip config with embed_dim, vision_cfg and '
                           'text_cfg')
        cfg['vision_cfg'] = dict(cfg['vision_cfg'], image_size=image_size)
        quick_gelu = bool(quick_gelu or cfg.pop('quick_gelu', False))
        custom_text = cfg.pop('custom_text', False) or \
            'hf_model_name' in cfg['text_cfg']
        cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
        return cls(**cfg, quick_gelu=quick_gelu)

    @staticmethod
    def _resolve_pretrained(model_name: str,
                            pretrained: Optional[str]) -> Optional[str]:
        """Map ``pretrained`` to a local file (downloading open_clip tags)."""
        if pretrained is None:
            return None
        if not isinstance(pretrained, str):
            raise TypeError('pretrained must be None, a file path or an '
                            f'open_clip tag, got {type(pretrained).__name__}')
        looks_like_path = (os.sep in pretrained or '/' in pretrained
                           or pretrained.endswith(_WEIGHT_SUFFIXES)
                           or osp.exists(pretrained))
        if looks_like_path:
            if not osp.isfile(pretrained):
                raise FileNotFoundError(_missing_weights_message(pretrained))
            return pretrained
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained not in tags:
            raise ValueError(
                f"'{pretrained}' is neither an existing weights file nor an "
                f"open_clip pretrained tag of '{model_name}' (tags: "
                f'{", ".join(tags) or "none"})')
        cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        try:
            return open_clip.download_pretrained(cfg)
        except Exception as err:  # network errors come in many types
            raise RuntimeError(
                f"could not download open_clip weights '{model_name}' / "
                f"'{pretrained}' ({err}). "
                + _missing_weights_message('<not downloaded>')) from err

    def load_clip_weights(self, path: str) -> None:
        """Load CLIP weights from ``path`` strictly, resizing the visual
        positional embedding to this model's patch grid."""
        state_dict = load_clip_state_dict(path)
        key = 'visual.positional_embedding'
        if key in state_dict and hasattr(self.clip.visual, 'grid_size'):
            state_dict[key] = resize_visual_pos_embed(
                state_dict[key], tuple(self.clip.visual.grid_size),
                self.pos_embed_interpolation)
        incompatible = self.clip.load_state_dict(state_dict, strict=False)
        if incompatible.missing_keys or incompatible.unexpected_keys:
            raise KeyError(
                f"weights in '{path}' do not match open_clip "
                f"'{self.model_name}': missing {incompatible.missing_keys[:8]}"
                f' ({len(incompatible.missing_keys)} in all), unexpected '
                f'{incompatible.unexpected_keys[:8]} '
                f'({len(incompatible.unexpected_keys)} in all)')
        print_log(f'OpenCLIPBackbone: loaded CLIP weights from {path}',
                  logger='current')

    @property
    def embed_dim(self) -> int:
        """Dimension of the joint embedding space."""
        return int(self.clip.text_projection.shape[-1])

    @property
    def context_length(self) -> int:
        """Number of text tokens the text tower expects."""
        return int(self.clip.context_length)

    def aux_losses(self) -> List[torch.Tensor]:
        """The auxiliary losses (e.g. load balancing) that the PETL modules
        computed in the last forward, one per module."""
        return [m.aux_loss for routers in self._routers.values()
                for m in routers if m.aux_loss is not None]

    def encode_image(self, images: torch.Tensor,
                     domains: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, D) CLS features.

        ``domains`` (B,) selects the routers' domain prompts, if any.
        """
        for router in self._routers['visual']:
            router.set_context(domains=domains)
        with self._autocast(images.device):
            return self.clip.encode_image(images)

    def encode_text(self, texts: torch.Tensor,
                    domains: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(T, L) token ids -> (T, D) EOT features."""
        if texts.shape[-1] != self.context_length:
            raise ValueError(
                f'texts have {texts.shape[-1]} tokens, the text tower expects '
                f'{self.context_length}; set the tokenizer context_length to '
                'match')
        routers = self._routers['text']
        if routers:
            # tokens up to and including EOT (the largest id) are real
            positions = torch.arange(texts.shape[-1], device=texts.device)
            valid = positions <= texts.argmax(-1, keepdim=True)
            for router in routers:
                router.set_context(domains=domains, token_mask=valid)
        with self._autocast(texts.device):
            return self.clip.encode_text(texts)

    def forward(self, images: torch.Tensor,
                texts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode both modalities: returns (image_feats, text_feats)."""
        return self.encode_image(images), self.encode_text(texts)


def _float32() -> torch.dtype:
    return torch.float32


_FROZEN_DTYPES = {
    None: None,
    'bfloat16': torch.bfloat16,
    'float16': torch.float16,
}


def _as_hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'image_size must be an int or (height, width), '
                         f'got {size}')
    return size
