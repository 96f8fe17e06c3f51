"""Count a config's parameters per PETL technique and per CLIP tower.

``python tools/analysis/count_params.py CONFIG [--cfg-options ...]``

The model is built on the meta device (no memory, no weights: ``pretrained``
is set to None), so the full ViT-B/16 configs take about a second. Every
parameter is attributed to

- a component: the PETL technique that owns it (the class of the enclosing
  :class:`~mmtpr.models.petl.PETLModule`: ``ScaledPrefix``, ``KVLoRA``,
  ``LNAdapter``, ``MixtureOfAdapters``, ...), ``CLIP`` for open_clip's own
  parameters, ``head`` for the loss head (e.g. a learnable logit scale) and
  ``other`` for anything else;
- a tower: ``visual`` (under ``clip.visual``), ``text`` (the rest of CLIP:
  token and positional embeddings, the text transformer, ``ln_final``,
  ``text_projection``) or ``other`` (CLIP's ``logit_scale``, the head, ...).

Trainable means ``requires_grad`` after the backbone froze CLIP, i.e. what
the optimizer gets. See docs/deployment.md for the ViT-B/16 numbers.
"""
import argparse
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction

import mmtpr  # noqa: F401  (registries)
from mmtpr.utils.config import load_config

TOWERS = ('visual', 'text', 'other')
# Counts: {component: {tower: [trainable, frozen]}}
Counts = Dict[str, Dict[str, List[int]]]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Count trainable and frozen parameters per PETL '
        'technique and per tower (built on the meta device)')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'model.backbone.petl.1.rank=16')
    return parser.parse_args(argv)


def build_model(cfg: Config, device='meta') -> nn.Module:
    """``cfg.model`` built on ``device`` without pretrained weights."""
    from mmtpr.registry import MODELS
    model_cfg = cfg.model.copy()
    if 'backbone' in model_cfg:
        model_cfg.backbone = dict(model_cfg.backbone, pretrained=None)
    with torch.device(device):
        model = MODELS.build(model_cfg)
    return model.eval()


def _clip_name(model: nn.Module) -> Optional[str]:
    """Name of the open_clip CLIP inside ``model`` ('' for the model
    itself), found by what it has: a visual tower and encode_text."""
    for name, module in model.named_modules():
        if hasattr(module, 'visual') and hasattr(module, 'encode_text') \
                and isinstance(module.visual, nn.Module):
            return name
    return None


def _join(prefix: str, name: str) -> str:
    return f'{prefix}.{name}' if prefix else name


def count_parameters(model: nn.Module) -> Counts:
    """Trainable and frozen parameters of ``model`` per component and
    tower (shared parameters are counted once).

    Returns:
        dict: ``{component: {tower: [trainable, frozen]}}`` with the
        components in order of first appearance (``CLIP`` and ``head``
        always present) and every tower of :data:`TOWERS`.
    """
    from mmtpr.models.petl import PETLModule
    petl = {name: type(module).__name__
            for name, module in model.named_modules()
            if isinstance(module, PETLModule)}
    clip = _clip_name(model)
    head = 'head' if isinstance(getattr(model, 'head', None),
                                nn.Module) else None
    counts: Counts = OrderedDict(
        (c, {t: [0, 0] for t in TOWERS}) for c in ('CLIP', 'head'))
    for name, param in model.named_parameters():
        parts = name.split('.')
        component = next((petl['.'.join(parts[:i])]
                          for i in range(len(parts) - 1, 0, -1)
                          if '.'.join(parts[:i]) in petl), None)
        in_clip = clip is not None and (clip == '' or
                                        name.startswith(clip + '.'))
        if component is None:
            if in_clip:
                component = 'CLIP'
            elif head is not None and name.startswith(head + '.'):
                component = 'head'
            else:
                component = 'other'
        tower = 'other'
        if in_clip:
            local = name[len(clip) + 1:] if clip else name
            if local.startswith('visual.'):
                tower = 'visual'
            elif local not in ('logit_scale', 'logit_bias'):
                tower = 'text'
        row = counts.setdefault(component, {t: [0, 0] for t in TOWERS})
        row[tower][0 if param.requires_grad else 1] += param.numel()
    return counts


def totals(counts: Counts) -> Dict[str, int]:
    """``trainable``, ``frozen``, ``total`` over every component."""
    trainable = sum(c[t][0] for c in counts.values() for t in TOWERS)
    frozen = sum(c[t][1] for c in counts.values() for t in TOWERS)
    return dict(trainable=trainable, frozen=frozen,
                total=trainable + frozen)


def _table(header: Sequence[str], rows: List[Sequence]) -> List[str]:
    cells = [[str(h) for h in header]] + [
        [f'{v:,}' if isinstance(v, int) else str(v) for v in row]
        for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, row in enumerate(cells):
        lines.append('  '.join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0:
            lines.append('  '.join('-' * w for w in widths))
    return lines


def format_counts(counts: Counts) -> str:
    """Two tables (per component, per tower) and the totals."""
    tot = totals(counts)
    rows = []
    for component, towers in counts.items():
        trainable = sum(towers[t][0] for t in TOWERS)
        frozen = sum(towers[t][1] for t in TOWERS)
        rows.append([component] + [sum(towers[t]) for t in TOWERS] +
                    [trainable, frozen, trainable + frozen])
    rows.append(['total'] + [sum(sum(c[t]) for c in counts.values())
                             for t in TOWERS] +
                [tot['trainable'], tot['frozen'], tot['total']])
    lines = ['Parameters per component (columns visual/text/other: '
             'trainable + frozen)']
    lines += _table(['component', *TOWERS, 'trainable', 'frozen',
                     'total'], rows)
    rows = []
    for tower in TOWERS:
        trainable = sum(c[tower][0] for c in counts.values())
        frozen = sum(c[tower][1] for c in counts.values())
        rows.append([tower, trainable, frozen, trainable + frozen])
    lines += ['', 'Parameters per tower']
    lines += _table(['tower', 'trainable', 'frozen', 'total'], rows)
    share = 100.0 * tot['trainable'] / max(tot['total'], 1)
    lines += ['', f"trainable: {tot['trainable']:,} of {tot['total']:,} "
              f"({tot['trainable'] / 1e6:.2f} M of {tot['total'] / 1e6:.2f}"
              f' M, {share:.2f} %)']
    return '\n'.join(lines)


def main(argv=None) -> Counts:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    counts = count_parameters(build_model(cfg))
    print(f'{args.config} (built on the meta device, pretrained=None)')
    print(format_counts(counts))
    return counts


if __name__ == '__main__':
    main()
