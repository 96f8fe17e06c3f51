"""Inference cost of a config's model per image and per caption.

``python tools/analysis/flops.py CONFIG [--batch-size N] [--cfg-options ...]``

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` at the
model's own input size (``model.backbone.image_size``, e.g. 384x128, and the
text tower's context length, e.g. 77), one multiply-add = 2 FLOPs. Only the
operations that FlopCounterMode counts are included: matrix products
(``mm``, ``addmm``, ``bmm``, ...), convolutions and attention; element-wise
operations, LayerNorms, softmax, GELU, embedding look-ups, sorting and
indexing are not (together well under 1 % for ViT-B/16).

Attention is run with PyTorch's math SDPA backend while counting: on the
CPU, ``F.scaled_dot_product_attention`` otherwise dispatches to a fused
kernel (``_scaled_dot_product_flash_attention_for_cpu``) that
FlopCounterMode (torch 2.x) does not count at all.

The model is built without pretrained weights on the meta device (no
memory, no compute). A model whose forward needs values (DM-Adapter with
``dispatch='grouped'``: its router counts tokens per expert with
``bincount``, which has no meta kernel) is counted on the CPU with random
weights instead; the output says which. The default ``'masked'`` dispatch
runs every expert on every token (weights zero off the top-k), and is
counted as it runs.

The frozen CLIP alone (``petl=[]``) is counted next to the method, and so
is each PETL technique added in config order, so that the overhead of
each is visible. DM-Adapter: every token (all 193 image tokens; all 77 text
positions, padding included, as the text tower runs the whole padded
sequence) is routed to ``top_k`` experts, and the experts' matmuls are
counted for exactly those token-expert pairs (the sparse computation the
implementation runs), plus both router gates. The count therefore depends
on the number of tokens and on k, not on which experts are chosen; load
imbalance changes wall-clock time only.
"""
import argparse
import copy
import re
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import mmtpr  # noqa: F401  (registries)
from mmtpr.utils.config import load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='GFLOPs per image and per caption of a config, with '
        'the frozen CLIP and each PETL technique shown separately')
    parser.add_argument('config', help='config file')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images and captions per forward (the cost is '
                        'reported per item); default 1')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'model.backbone.image_size=[256,128]')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    return args


def build_model(model_cfg: dict, device: str) -> nn.Module:
    """A model config built on ``device`` without pretrained weights."""
    from mmtpr.registry import MODELS
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg['backbone'] = dict(model_cfg['backbone'], pretrained=None)
    with torch.device(device):
        model = MODELS.build(model_cfg)
    return model.eval()


def make_inputs(backbone: nn.Module, batch_size: int, device: str
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random normalised images and captions of ~20 tokens (SOT, words,
    EOT = the largest id, zero padding) at the backbone's input size."""
    height, width = backbone.image_size
    length = backbone.context_length
    vocab = int(backbone.clip.vocab_size)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, height, width, generator=gen)
    texts = torch.zeros(batch_size, length, dtype=torch.long)
    words = min(18, length - 2)
    texts[:, 0] = vocab - 2
    texts[:, 1:1 + words] = torch.randint(1, vocab - 3, (batch_size, words),
                                          generator=gen)
    texts[:, 1 + words] = vocab - 1
    return images.to(device), texts.to(device)


def count_flops(model: nn.Module, batch_size: int = 1,
                device: str = 'meta') -> Dict[str, float]:
    """FLOPs of one image and of one caption (each the count of a forward
    of ``batch_size`` items divided by ``batch_size``)."""
    backbone = model.backbone
    images, texts = make_inputs(backbone, batch_size, device)
    result = dict(image_size=tuple(backbone.image_size),
                  context_length=backbone.context_length)
    for key, encode, inputs in (('image', backbone.encode_image, images),
                                ('text', backbone.encode_text, texts)):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            encode(inputs)
        result[key] = counter.get_total_flops() / batch_size
    return result


def measure(model_cfg: dict, batch_size: int = 1) -> Tuple[Dict, str]:
    """Count on the meta device, or on the CPU with random weights when the
    forward needs values; returns ``(flops, where)``."""
    try:
        return count_flops(build_model(model_cfg, 'meta'), batch_size,
                           'meta'), 'meta'
    except (NotImplementedError, RuntimeError) as err:
        op = re.search(r'aten::\w+', str(err))
        reason = f'{op.group(0)} has no meta kernel' if op else \
            type(err).__name__
        torch.manual_seed(0)
        flops = count_flops(build_model(model_cfg, 'cpu'), batch_size, 'cpu')
        return flops, f'cpu, random weights ({reason})'


def _technique(cfg: dict) -> str:
    kind = cfg.get('type', '?')
    return (kind if isinstance(kind, str) else kind.__name__).split('.')[-1]


def analyse(cfg: Config, batch_size: int = 1) -> List[dict]:
    """Rows ``{name, image, text, where}``: the frozen CLIP (``petl=[]``),
    then the model with the first 1, 2, ... PETL techniques of the config;
    the last row is the config's model."""
    model_cfg = cfg.model.to_dict()
    petl = list(model_cfg['backbone'].get('petl') or [])
    rows = []
    for n in range(len(petl) + 1):
        variant = copy.deepcopy(model_cfg)
        variant['backbone']['petl'] = petl[:n]
        flops, where = measure(variant, batch_size)
        name = 'frozen CLIP' if n == 0 else f'+ {_technique(petl[n - 1])}'
        rows.append(dict(name=name, where=where, **flops))
    return rows


def format_rows(rows: List[dict]) -> str:
    """The rows as a table of GFLOPs, with each technique's increment."""
    base, full = rows[0], rows[-1]
    height, width = base['image_size']
    lines = [
        f'GFLOPs per image ({height}x{width}) and per caption '
        f"({base['context_length']} tokens); 1 multiply-add = 2 FLOPs; "
        'matmul, conv and attention only',
        f"{'model':<22}{'image':>9}{'(+)':>9}{'caption':>10}{'(+)':>9}"
        '  counted on']
    previous = None
    for row in rows:
        image, text = row['image'] / 1e9, row['text'] / 1e9
        if previous is None:
            steps = ('', '')
        else:
            steps = (f"{image - previous['image'] / 1e9:+.3f}",
                     f"{text - previous['text'] / 1e9:+.3f}")
        lines.append(f"{row['name']:<22}{image:>9.3f}{steps[0]:>9}"
                     f"{text:>10.3f}{steps[1]:>9}  {row['where']}")
        previous = row
    if len(rows) > 1:
        lines.append(
            'PETL overhead vs frozen CLIP: image '
            f"{(full['image'] - base['image']) / 1e9:+.3f} GFLOPs "
            f"({100 * (full['image'] / base['image'] - 1):+.1f} %), caption "
            f"{(full['text'] - base['text']) / 1e9:+.3f} GFLOPs "
            f"({100 * (full['text'] / base['text'] - 1):+.1f} %)")
    return '\n'.join(lines)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    rows = analyse(cfg, args.batch_size)
    print(f'{args.config} (pretrained=None, batch {args.batch_size})')
    print(format_rows(rows))
    return rows


if __name__ == '__main__':
    main()
