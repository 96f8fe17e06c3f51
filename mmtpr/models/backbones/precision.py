"""The precision policy of a frozen CLIP: which weights are stored in half
precision, and the autocast that goes with them."""
import logging
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmtpr.utils.errors import ConfigError

from ..petl import PETLBlock

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


def to_petl_blocks(clip: nn.Module) -> int:
    """Convert every open_clip residual block of both towers that is not a
    :class:`PETLBlock` yet (and can be: self-attention through
    ``nn.MultiheadAttention``) into one; returns how many were converted.

    The computation is the same; the projections then run on batch-first
    contiguous tensors and attention through
    ``F.scaled_dot_product_attention``, which is what makes bfloat16 pay
    on the CPU (see :func:`slow_cpu_bfloat16_reason`).
    """
    converted = 0
    for transformer in _transformers(clip):
        blocks = transformer.resblocks
        for index, block in enumerate(blocks):
            if isinstance(block, PETLBlock) or not isinstance(
                    getattr(block, 'attn', None), nn.MultiheadAttention):
                continue
            try:
                blocks[index] = PETLBlock.from_open_clip(block)
            except TypeError:  # e.g. cross-attention: left as it is
                continue
            converted += 1
    return converted


def _transformers(clip: nn.Module) -> Iterator[nn.Module]:
    for owner in (getattr(clip, 'visual', None), clip):
        transformer = getattr(owner, 'transformer', None)
        if isinstance(getattr(transformer, 'resblocks', None), nn.ModuleList):
            yield transformer


def cpu_has_bfloat16_matmul() -> Optional[bool]:
    """Whether this CPU has bfloat16 dot-product instructions
    (AVX512-BF16 or AMX-BF16); None where /proc/cpuinfo cannot tell."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line for line in f if line.startswith('flags')),
                         None)
    except OSError:
        return None
    if flags is None:
        return None
    names = set(flags.split(':', 1)[-1].split())
    return bool(names & {'avx512_bf16', 'amx_bf16'})


# Below this width (of the widest tower) a bfloat16 training step on the
# CPU measured no faster than float32: the demo's 128-wide CLIP ran at
# 0.9-1.05x, ViT-B/16 (768) at 2x (benchmarks/bf16_cpu.py).
SMALL_WIDTH = 512


def _width(clip: nn.Module) -> int:
    return max((int(getattr(t, 'width', 0)) for t in _transformers(clip)),
               default=0)


def slow_cpu_bfloat16_reason(clip: nn.Module,
                             training: bool = False) -> Optional[str]:
    """Why bfloat16 autocast would be slower than float32 for ``clip`` on
    this CPU (measured: docs/benchmarks.md), or None; ``training`` for a
    step with a backward pass."""
    if cpu_has_bfloat16_matmul() is False:
        return ('this CPU has no bfloat16 matrix instructions (AVX512-BF16 '
                'or AMX): PyTorch emulates bfloat16 products, which are '
                'slower than float32 ones')
    mha = sum(isinstance(m, nn.MultiheadAttention) for m in clip.modules())
    if mha:
        return (f'{mha} block(s) use nn.MultiheadAttention, whose '
                'projections of a transposed input run in bfloat16 as '
                'batched products that copy the weight for every sample '
                '(about 10x slower than float32); build the backbone with '
                "attention='sdpa' (the default)")
    width = _width(clip)
    if training and 0 < width < SMALL_WIDTH:
        return (f'the model is {width} wide: its matrix products are too '
                'small for bfloat16 to win back the casts and the slower '
                'bfloat16 attention backward (the demo model trains at '
                '0.9-1.05x the float32 speed)')
    return None


def warn_if_slow_cpu_bfloat16(clip: nn.Module,
                              training: bool = False) -> Optional[str]:
    """Log a warning when bfloat16 autocast on the CPU is known to be
    slower than float32 for ``clip`` (the backbone calls it once per
    model, for inference and for training); returns the reason, or
    None."""
    reason = slow_cpu_bfloat16_reason(clip, training)
    if reason is not None:
        print_log(f'bfloat16 autocast on the CPU will be slower than '
                  f'float32: {reason}. Run in float32 (without --amp and '
                  'without frozen_dtype) for speed.', logger='current',
                  level=logging.WARNING)
    return reason
