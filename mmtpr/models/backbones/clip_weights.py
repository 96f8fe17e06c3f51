"""CLIP weights files: finding them, reading them safely, fitting them.

- :func:`resolve_pretrained` maps ``pretrained`` (a local file or an
  open_clip tag) to a file;
- :func:`load_clip_state_dict` reads OpenAI's TorchScript archives without
  running their code
  (:func:`mmtpr.utils.torchscript.read_torchscript_state_dict`),
  ``.safetensors`` files, and ``torch.save`` state dicts with
  ``weights_only=True``, and says which activation the weights were
  trained with when the file tells (:class:`ClipWeights`);
- :func:`resize_visual_pos_embed` fits the visual positional embedding to
  another patch grid (IRRA's bilinear resize, docs/methods.md §0.1).
"""
import math
import os
import os.path as osp
from typing import Dict, NamedTuple, Optional, Tuple

import open_clip
import torch
import torch.nn.functional as F

from mmtpr.models.petl.checkpoint import strip_module_prefix
from mmtpr.utils.checkpoint import (
    is_torchscript_archive,
    load_state_dict_file,
)
from mmtpr.utils.errors import CheckpointError, ConfigError, MissingFileError
from mmtpr.utils.fileio import check_regular_file
from mmtpr.utils.torchscript import read_torchscript_state_dict

# Entries of OpenAI's archives that are not weights of open_clip's CLIP
# (``attn_mask`` is a non-persistent buffer in open_clip).
_NON_WEIGHT_KEYS = ('input_resolution', 'context_length', 'vocab_size',
                    'attn_mask')
_WEIGHT_SUFFIXES = ('.pt', '.pth', '.bin', '.ckpt', '.safetensors')
ACTIVATIONS = ('quick_gelu', 'gelu')


class ClipWeights(NamedTuple):
    """A CLIP state dict and what its file says about the model.

    ``activation`` is 'quick_gelu' or 'gelu' when the file tells (a
    TorchScript archive names its activation class; a ``.safetensors``
    file may record ``activation`` in its metadata), else None.
    """

    state_dict: Dict[str, torch.Tensor]
    activation: Optional[str]
    source: str


def missing_weights_message(path: str) -> str:
    return (
        f"CLIP weights file '{path}' does not exist. mmtpr never downloads "
        'weights while it runs: fetch them once and point '
        '`model.backbone.pretrained` at the file (README, "CLIP weights"). '
        "OpenAI's ViT-B/16 (a TorchScript archive, used by the papers) is "
        'listed in open_clip as `open_clip.get_pretrained_cfg("ViT-B-16", '
        '"openai")["url"]`; open_clip checkpoints (.bin / .safetensors) come '
        'from the Hugging Face hub (e.g. timm/vit_base_patch16_clip_224.'
        'openai).')


def resolve_pretrained(model_name: str,
                       pretrained: Optional[str]) -> Optional[str]:
    """Map ``pretrained`` to a local weights file (None for random init).

    A path must exist; an open_clip tag of ``model_name`` (e.g. 'openai')
    is looked up in open_clip's local cache and downloaded only if absent,
    which needs network access.
    """
    if pretrained is None:
        return None
    if not isinstance(pretrained, str):
        raise ConfigError('pretrained must be None, a file path or an '
                          f'open_clip tag, got {type(pretrained).__name__}')
    if (os.sep in pretrained or '/' in pretrained
            or pretrained.endswith(_WEIGHT_SUFFIXES)
            or osp.exists(pretrained)):
        if not osp.lexists(pretrained):
            raise MissingFileError(missing_weights_message(pretrained))
        return pretrained
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise ConfigError(
            f"'{pretrained}' is neither an existing weights file nor an "
            f"open_clip pretrained tag of '{model_name}' (tags: "
            f'{", ".join(tags) or "none"})')
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    try:
        return open_clip.download_pretrained(cfg)
    except Exception as err:  # network errors come in many types
        raise MissingFileError(
            f"could not fetch open_clip weights '{model_name}' / "
            f"'{pretrained}' ({type(err).__name__}: {err}). "
            + missing_weights_message('<not downloaded>')) from None


def _activation_of_classes(classes) -> Optional[str]:
    names = {name.rsplit('.', 1)[-1] for name in classes}
    if 'QuickGELU' in names:
        return 'quick_gelu'
    if 'GELU' in names:
        return 'gelu'
    return None


def _read_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor],
                                          Optional[str]]:
    from safetensors import safe_open
    try:
        with safe_open(path, framework='pt', device='cpu') as file:
            metadata = file.metadata() or {}
            state_dict = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read the safetensors file '{path}' "
                              f'({type(err).__name__}: {err})') from None
    activation = metadata.get('activation')
    return state_dict, activation if activation in ACTIVATIONS else None


def load_clip_state_dict(path: str) -> ClipWeights:
    """Read a CLIP state dict from a local file, running no code from it.

    Accepts OpenAI's TorchScript archives, ``.safetensors`` files and
    ``torch.save`` files holding a state dict (optionally nested under
    ``state_dict`` / ``model``, keys optionally prefixed ``module.``).

    Raises:
        MissingFileError: the file does not exist.
        CheckpointError: it cannot be read, or holds no state dict.
    """
    check_regular_file(path, 'CLIP weights file')
    activation = None
    if path.endswith('.safetensors'):
        state_dict, activation = _read_safetensors(path)
        kind = 'safetensors'
    elif is_torchscript_archive(path):
        state_dict, classes = read_torchscript_state_dict(path)
        activation = _activation_of_classes(classes)
        kind = 'TorchScript archive'
    else:
        state_dict = load_state_dict_file(path, 'CLIP weights file')
        for key in ('state_dict', 'model'):
            if isinstance(state_dict.get(key), dict):
                state_dict = state_dict[key]
        kind = 'state dict'
    tensors = {k: v for k, v in state_dict.items()
               if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"'{path}' holds no CLIP weights (a {kind} "
                              'without tensors)')
    tensors = dict(strip_module_prefix(tensors))
    for key in _NON_WEIGHT_KEYS:
        tensors.pop(key, None)
    return ClipWeights(tensors, activation, kind)


def resize_visual_pos_embed(pos_embed: torch.Tensor,
                            grid_size: Tuple[int, int],
                            interpolation: str = 'bilinear') -> torch.Tensor:
    """Resize a ViT positional embedding (1 + h*w, D) to a new patch grid.

    The class-token row is kept; the patch rows are taken as a square grid
    (as in every released CLIP) unless they already match ``grid_size``,
    and interpolated with ``align_corners=False`` and no antialiasing
    (IRRA's ``F.interpolate(mode='bilinear')``). open_clip's own helper
    compares only sequence lengths, so it would skip e.g. 4x4 -> 8x2; this
    one compares grids.
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
        raise CheckpointError(
            f'cannot resize a positional embedding of {num} patch rows (not '
            f'a square grid) to a {new_h}x{new_w} grid')
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    grid = patches.reshape(1, old_h, old_w, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new_h, new_w),
                         mode=interpolation, align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(new_h * new_w, -1)
    return torch.cat([cls_row, patches.to(pos_embed.dtype)])
