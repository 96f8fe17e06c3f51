"""The precision policy of a frozen CLIP: which weights are stored in half
precision, and the autocast that goes with them."""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn

from mmtpr.utils.errors import ConfigError

FROZEN_DTYPES = {
    None: None,
    'bfloat16': torch.bfloat16,
    'float16': torch.float16,
}


def resolve_frozen_dtype(name: Optional[str]) -> Optional[torch.dtype]:
    """The torch dtype of ``frozen_dtype`` (None, 'bfloat16', 'float16')."""
    if name not in FROZEN_DTYPES:
        raise ConfigError('frozen_dtype must be one of '
                          f'{sorted(FROZEN_DTYPES, key=str)}, got {name!r}')
    return FROZEN_DTYPES[name]


def _text_cast_reference(clip: nn.Module) -> Optional[nn.Parameter]:
    """The weight from which open_clip reads the text tower's input dtype
    (``transformer.get_cast_dtype()``: the first block's ``mlp.c_fc``)."""
    text = getattr(clip, 'transformer', None)
    blocks = getattr(text, 'resblocks', None)
    if not blocks:
        return None
    c_fc = getattr(getattr(blocks[0], 'mlp', None), 'c_fc', None)
    return getattr(c_fc, 'weight', None)


def store_frozen_matrices_in(clip: nn.Module, dtype: torch.dtype) -> int:
    """Cast the frozen weight matrices of ``clip`` (linear, convolution and
    attention projections: the bulk of CLIP) to ``dtype``; returns how many
    parameters were cast.

    Embedding tables, positional embeddings, norms, biases and trainable
    parameters stay float32, so that the residual stream keeps float32
    precision as under AMP: autocast casts exactly these matrices to
    ``dtype`` for the matmuls anyway, so the numerics are those of AMP with
    float32 weights. One matrix also stays float32: the text tower's first
    ``mlp.c_fc`` weight, from which open_clip reads the dtype it casts the
    text tower's input embeddings to (keeping that float32 keeps the
    stream float32; it is 0.3 % of ViT-B/16's weights).
    """
    tables = {id(m.weight) for m in clip.modules()
              if isinstance(m, nn.Embedding)}
    keep = _text_cast_reference(clip)
    cast = 0
    for name, param in clip.named_parameters():
        if (param.requires_grad or param.dim() < 2 or id(param) in tables
                or param is keep or 'positional_embedding' in name):
            continue
        param.data = param.data.to(dtype)
        cast += param.numel()
    return cast


@contextmanager
def autocast_unless_enabled(dtype: Optional[torch.dtype],
                            device: torch.device) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device`` unless autocast is already on
    (e.g. by the AMP optimizer wrapper) or ``dtype`` is None."""
    if dtype is None or torch.is_autocast_enabled(device.type):
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
