"""Export a trained model as one self-contained PyTorch checkpoint.

:func:`export_pytorch` (``tools/export.py``):

1. builds the model of the config; the backbone loads the pretrained CLIP
   that the config names (``model.backbone.pretrained``);
2. loads the checkpoint: a PETL-only one (``meta['petl_only']``; checked
   against the model's PETL setup and against the frozen weights it was
   trained on) or a full one, strictly; one that does not fit the config is
   refused with the missing, unexpected and mis-shaped keys;
3. merges what can be merged: every technique whose class has a ``merge``
   method (KV-LoRA: ``W_kv += s B A`` in the attention in-projection); the
   others (prefixes, adapters, mixtures of adapters) stay, since they are
   not linear maps of the frozen weights (docs/deployment.md);
4. writes ``DIR/model.pth`` (``{'state_dict', 'meta'}``, the full state dict,
   ``meta`` saying what was merged and recording the exported model) and
   ``DIR/config.py`` (the config with ``pretrained=None`` and the merged
   techniques removed), so that ``tools/test.py DIR/config.py
   DIR/model.pth`` needs neither the pretrained CLIP nor the training
   checkpoint;
5. verifies the export: the model of ``DIR/config.py`` loads
   ``DIR/model.pth`` strictly and gives the same features as the trained
   model on random inputs; a failed export is removed.
"""
import copy
import io
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config

import mmtpr
from mmtpr.models.petl.checkpoint import (
    check_model_record,
    check_petl_checkpoint,
    describe_key_mismatch,
    fingerprints_match,
    frozen_fingerprint,
    load_petl_checkpoint,
    petl_state_dict_keys,
    short_key_list,
    strip_module_prefix,
)
from mmtpr.registry import MODELS, PETL
from mmtpr.utils.checkpoint import load_state_dict_file
from mmtpr.utils.config import load_config
from mmtpr.utils.errors import CheckpointError, ConfigError, MissingFileError
from mmtpr.utils.fileio import atomic_write_bytes
from mmtpr.utils.model_record import META_KEY, model_record

EXPORTED_BY = 'mmtpr.apis.export'
# Entries of the training checkpoint's meta copied into the export's.
SOURCE_META_KEYS = ('epoch', 'iter', 'experiment_name', 'seed', 'time')
# Where each mergeable technique goes, for the summary.
MERGED_INTO = {'KVLoRA': 'the K and V rows of the attention in-projection'}


def _name(petl_cfg: dict) -> str:
    kind = petl_cfg.get('type', '?')
    return (kind if isinstance(kind, str) else kind.__name__).split('.')[-1]


def build_model(cfg: Config) -> nn.Module:
    """``cfg.model`` on the CPU, with the pretrained CLIP it names."""
    try:
        model = MODELS.build(copy.deepcopy(cfg.model))
    except MissingFileError as err:
        raise MissingFileError(
            f'{err}\nExport builds the model with the pretrained CLIP of '
            'the training run; point --cfg-options '
            'model.backbone.pretrained=PATH at it.') from None
    return model.eval()


def check_full_checkpoint(model: nn.Module, state_dict: dict,
                          source: str, meta: dict) -> None:
    """Refuse a full state dict whose keys or shapes differ from
    ``model``'s."""
    own = model.state_dict()
    problems = describe_key_mismatch(list(own), state_dict, own)
    if not problems:
        return
    hint = ('Export with the config the checkpoint was trained with (the '
            'same model.backbone.model_name/model_cfg and petl).')
    if meta.get('exported_by') == EXPORTED_BY:
        hint = ('It is already an exported checkpoint: it goes with the '
                'config.py written beside it and needs no export.')
    raise CheckpointError(f'{source} does not match the model of the config: '
                     + '; '.join(problems) + '. ' + hint)


def load_trained(model: nn.Module, path: str, force: bool = False,
                 pretrained: Optional[str] = None,
                 record: Optional[dict] = None) -> Tuple[dict, str]:
    """Load the training checkpoint ``path`` into ``model``.

    Returns:
        tuple: the checkpoint's meta and its kind ('PETL-only' or 'full').
    """
    checkpoint = load_state_dict_file(path)
    state_dict = checkpoint.get('state_dict', checkpoint)
    meta = checkpoint.get('meta') or {}
    if meta.get('exported_by') == EXPORTED_BY:
        raise CheckpointError(
            f"checkpoint '{path}' is already an exported checkpoint: it goes "
            'with the config.py written beside it and needs no export.')
    if record is not None:
        check_model_record(meta, record, f"checkpoint '{path}'")
    state_dict = strip_module_prefix(state_dict)
    petl_keys = petl_state_dict_keys(model)
    petl_only = bool(meta.get('petl_only')) or (
        bool(petl_keys) and set(state_dict) == set(petl_keys)
        and len(petl_keys) < len(model.state_dict()))
    source = f"checkpoint '{path}'"
    if not petl_only:
        check_full_checkpoint(model, state_dict, source, meta)
        model.load_state_dict(state_dict, strict=True)
        return meta, 'full'
    source = f"PETL-only checkpoint '{path}'"
    check_petl_checkpoint(model, state_dict, source)
    saved = meta.get('frozen_fingerprint')
    if saved is not None and not force and not fingerprints_match(
            saved, frozen_fingerprint(model, petl_keys)):
        raise CheckpointError(
            f'{source} was trained on other frozen weights than the '
            f'pretrained CLIP of the config ({pretrained!r}), so the '
            'export would not be the trained model. Point '
            'model.backbone.pretrained at the weights of the training run '
            '(--cfg-options), or pass --force.')
    load_petl_checkpoint(model, dict(state_dict=state_dict,
                                     meta=dict(meta, petl_only=True)))
    return meta, 'PETL-only'


def merge_techniques(model: nn.Module, petl_cfgs: List[dict]
                     ) -> Tuple['OrderedDict[str, dict]', List[dict]]:
    """Merge every technique of ``petl_cfgs`` whose class has ``merge``.

    Returns:
        tuple: ``{name: {'modules': n, 'parameters': p}}`` of the merged
        techniques and the configs of the techniques that stay.
    """
    merged = OrderedDict()
    for name in dict.fromkeys(_name(c) for c in petl_cfgs):
        technique = PETL.get(name)
        if technique is None or not callable(getattr(technique, 'merge',
                                                     None)):
            continue
        modules = [m for m in model.modules() if isinstance(m, technique)]
        params = sum(p.numel() for m in modules for p in m.parameters())
        count = technique.merge(model)
        if any(isinstance(m, technique) for m in model.modules()):
            raise RuntimeError(f'{name}.merge left {name} modules behind')
        merged[name] = dict(modules=count, parameters=params)
    kept = [copy.deepcopy(c) for c in petl_cfgs if _name(c) not in merged]
    return merged, kept


def exported_config(cfg: Config, kept: List[dict], name: str) -> Config:
    """The config of the exported model: no pretrained file, only the
    techniques that were not merged, full (not PETL-only) checkpoints; test
    logs go to ``work_dirs/<name>`` unless the config sets a work_dir."""
    out = copy.deepcopy(cfg)
    if out.get('work_dir') is None:
        out.work_dir = osp.join('work_dirs', name)
    out.model.backbone.pretrained = None
    out.model.backbone.petl = kept
    hooks = out.get('default_hooks')
    if hooks and hooks.get('petl_checkpoint'):
        hooks.petl_checkpoint.petl_only = False
    out.load_from = None
    out.resume = False
    return out


def dump_config(cfg: Config, path: str, header: List[str]) -> None:
    """Write ``cfg`` as a Python config with a comment ``header``,
    atomically and never through a symbolic link."""
    text = ''.join(f'# {line}\n' for line in header) + cfg.pretty_text
    atomic_write_bytes(text.encode('utf-8'), path)


def random_inputs(model: nn.Module, num: int = 2
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random normalised images and two captions (SOT, words, EOT, zero
    padding) at the model's input size."""
    backbone = model.backbone
    height, width = backbone.image_size
    vocab = int(backbone.clip.vocab_size)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(num, 3, height, width, generator=gen)
    texts = torch.zeros(num, backbone.context_length, dtype=torch.long)
    for i in range(num):
        words = 5 + 7 * i
        texts[i, 0] = vocab - 2
        texts[i, 1:1 + words] = torch.randint(1, vocab - 3, (words, ),
                                              generator=gen)
        texts[i, 1 + words] = vocab - 1
    return images, texts


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor,
             texts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    image_feats, text_feats = model(images, texts, mode='tensor')
    return image_feats.float(), text_feats.float()


def verify(config_path: str, model_path: str,
           reference: Tuple[torch.Tensor, torch.Tensor],
           inputs: Tuple[torch.Tensor, torch.Tensor],
           tolerance: float) -> Dict[str, float]:
    """Build the model of the written config, load the written checkpoint
    strictly and compare its features with ``reference``.

    Returns:
        dict: the largest absolute feature difference per modality.
    """
    cfg = Config.fromfile(config_path)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    checkpoint = load_state_dict_file(model_path)
    result = model.load_state_dict(checkpoint['state_dict'], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"the exported '{model_path}' does not load strictly into the "
            f"model of '{config_path}': missing "
            f'{short_key_list(result.missing_keys)}, unexpected '
            f'{short_key_list(result.unexpected_keys)}')
    diffs = {}
    for name, before, after in zip(('image', 'text'), reference,
                                   features(model, *inputs)):
        diffs[name] = float((after - before).abs().max())
        if not torch.allclose(after, before, atol=tolerance,
                              rtol=tolerance):
            raise CheckpointError(
                f'the exported model gives other {name} features than the '
                f'trained one (max |diff| {diffs[name]:.3g} > {tolerance:g})'
                '; rerun with a larger --atol if that is rounding')
    return diffs


def _simple(meta: dict) -> dict:
    return {k: meta[k] for k in SOURCE_META_KEYS
            if isinstance(meta.get(k), (int, float, str, bool))}


def _export_meta(cfg, config, checkpoint, kind, source_meta, merged, kept,
                 params_before, params_after) -> dict:
    return dict(
        exported_by=EXPORTED_BY,
        mmtpr_version=mmtpr.__version__,
        source_config=osp.abspath(config),
        source_checkpoint=osp.abspath(checkpoint),
        source_kind=kind,
        source_meta=_simple(source_meta),
        merged=dict(merged),
        kept=[_name(c) for c in kept],
        parameters_before=params_before,
        parameters_after=params_after,
        petl_only=False,
        **{META_KEY: model_record(cfg.model)})


def export_pytorch(config: str,
                   checkpoint: str,
                   out_dir: str,
                   merge: bool = True,
                   check: bool = True,
                   atol: Optional[float] = None,
                   force: bool = False,
                   cfg_options: Optional[dict] = None) -> dict:
    """Export ``checkpoint`` of ``config`` into ``out_dir`` (see the module
    docstring).

    Args:
        config (str): the training config.
        checkpoint (str): a checkpoint of it (full or PETL-only).
        out_dir (str): where ``model.pth`` and ``config.py`` go.
        merge (bool): merge what can be merged. Defaults to True.
        check (bool): reload the export and compare features.
            Defaults to True.
        atol (float, optional): feature tolerance of the check; default
            1e-5, or 1e-2 with a half-precision ``frozen_dtype``.
        force (bool): export a PETL-only checkpoint even if it was trained
            on other frozen weights than the config's pretrained CLIP.
        cfg_options (dict, optional): config overrides.

    Returns:
        dict: the meta written into the exported checkpoint, plus
        ``summary`` (lines saying what was done).
    """
    cfg = load_config(config, cfg_options)
    backbone_cfg = cfg.model.get('backbone', {})
    if backbone_cfg.get('type') not in ('OpenCLIPBackbone',
                                        'mmtpr.OpenCLIPBackbone'):
        raise ConfigError('export supports model.backbone of type '
                          f"OpenCLIPBackbone, got {backbone_cfg.get('type')}")
    model = build_model(cfg)
    source_meta, kind = load_trained(model, checkpoint, force,
                                     backbone_cfg.get('pretrained'),
                                     model_record(cfg.model))
    params_before = sum(p.numel() for p in model.parameters())
    inputs = random_inputs(model)
    reference = features(model, *inputs)
    petl_cfgs = [dict(c) for c in (backbone_cfg.get('petl') or [])]
    merged, kept = merge_techniques(model, petl_cfgs) if merge else (
        OrderedDict(), copy.deepcopy(petl_cfgs))
    name = osp.basename(osp.normpath(osp.abspath(out_dir)))
    out_cfg = exported_config(cfg, kept, name)
    meta = _export_meta(out_cfg, config, checkpoint, kind, source_meta,
                        merged, kept, params_before,
                        sum(p.numel() for p in model.parameters()))
    paths = _write_export(model, meta, out_cfg, out_dir,
                          (config, checkpoint, kind, merged))
    del model  # the check builds the model a second time
    meta['summary'] = _summary(config, checkpoint, kind, merged, merge,
                               meta, *paths)
    if check:
        tolerance = atol if atol is not None else (
            1e-5 if backbone_cfg.get('frozen_dtype') is None else 1e-2)
        _check_export(paths[:2], reference, inputs, tolerance, meta)
    return meta


def _write_export(model: nn.Module, meta: dict, out_cfg: Config,
                  out_dir: str, source: tuple) -> Tuple[str, str, int]:
    """Write ``model.pth`` (atomically) and ``config.py``; returns their
    paths and the number of tensors."""
    config, checkpoint, kind, merged = source
    model_path = osp.join(out_dir, 'model.pth')
    config_path = osp.join(out_dir, 'config.py')
    buffer = io.BytesIO()
    state_dict = model.state_dict()
    torch.save(dict(state_dict=state_dict, meta=meta), buffer)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_bytes(buffer.getbuffer(), model_path)
    merged_text = ', '.join(f"{k} ({v['modules']} modules)"
                            for k, v in merged.items()) or 'nothing'
    dump_config(out_cfg, config_path, [
        f'Exported by {EXPORTED_BY} from {config} and {checkpoint} '
        f'({kind}).',
        f'Merged: {merged_text}; pretrained=None: the weights are all in '
        'model.pth.',
        f'Test: python tools/test.py {config_path} {model_path}',
    ])
    return model_path, config_path, len(state_dict)


def _check_export(paths: Tuple[str, str], reference, inputs,
                  tolerance: float, meta: dict) -> None:
    """Verify the written export (see :func:`verify`); remove it if it
    fails."""
    model_path, config_path = paths
    try:
        diffs = verify(config_path, model_path, reference, inputs,
                       tolerance)
    except Exception as err:
        for path in (model_path, config_path):
            os.remove(path)
        raise CheckpointError(
            f'{err}\nThe export failed its verification and was removed '
            f'from {osp.dirname(model_path)}.') from None
    meta['summary'].append(
        f'  verified: {config_path} (pretrained=None) loads '
        f'{osp.basename(model_path)} strictly; max |feature diff| '
        f"image {diffs['image']:.2g}, text {diffs['text']:.2g} "
        f'(tolerance {tolerance:g})')
    meta['verified'] = diffs


def _summary(config, checkpoint, kind, merged, merge, meta, model_path,
             config_path, num_tensors) -> List[str]:
    lines = [f'Exported {config} + {checkpoint} ({kind} checkpoint)']
    for name, info in merged.items():
        lines.append(f"  merged: {name} x{info['modules']} "
                     f"({info['parameters']:,} parameters folded into "
                     f"{MERGED_INTO.get(name, 'the frozen weights')})")
    if not merged:
        lines.append('  merged: nothing' + ('' if merge else
                                            ' (--no-merge)'))
    lines.append(f"  kept:   {', '.join(meta['kept']) or 'no technique'}")
    lines.append(f"  parameters: {meta['parameters_before']:,} before, "
                 f"{meta['parameters_after']:,} after")
    size = osp.getsize(model_path)
    lines.append(f'  wrote {model_path} ({size / 2**20:.1f} MiB, '
                 f'{num_tensors} tensors) and {config_path}')
    return lines
