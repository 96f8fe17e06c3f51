"""PETL-only checkpoints: only the trainable parameters, checked on load.

:class:`mmtpr.engine.hooks.PETLCheckpointHook` saves and checks them;
:func:`load_petl_checkpoint` loads them (or full checkpoints) into a built
model for inference and export. See docs/checkpoints.md.
"""
import logging
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmtpr.utils.checkpoint import load_state_dict_file
from mmtpr.utils.errors import CheckpointError
from mmtpr.utils.model_record import META_KEY, record_differences

from .utils import PETLModule


def petl_state_dict_keys(model: nn.Module) -> List[str]:
    """The state-dict keys that a PETL-only checkpoint of ``model`` holds.

    Every trainable parameter (``requires_grad``, wherever it lives, e.g. a
    learnable logit scale) and every entry of the state of a
    :class:`~mmtpr.models.petl.PETLModule` (its parameters, trainable or
    not, and its persistent buffers), in state-dict order. Everything else
    (the frozen CLIP) comes from ``pretrained`` when the model is built.

    Args:
        model (nn.Module): the model, not wrapped (no DDP ``module.``).

    Returns:
        list[str]: the keys.
    """
    prefixes = tuple(f'{name}.' for name, module in model.named_modules(
        remove_duplicate=False) if isinstance(module, PETLModule))
    return [key for key, value in model.state_dict(keep_vars=True).items()
            if (isinstance(value, nn.Parameter) and value.requires_grad)
            or key.startswith(prefixes)]


def select_state_dict(state_dict: Dict[str, torch.Tensor],
                      keys: Sequence[str]) -> 'OrderedDict[str, Any]':
    """The entries ``keys`` of ``state_dict``, keeping its ``_metadata``
    (the modules' state-dict versions)."""
    selected = OrderedDict((key, state_dict[key]) for key in keys)
    selected._metadata = getattr(state_dict, '_metadata', OrderedDict())
    return selected


def state_dict_size(state_dict: Dict[str, Any]) -> Tuple[int, int]:
    """``(number of elements, bytes)`` of the tensors of a state dict."""
    tensors = [v for v in state_dict.values() if isinstance(v, torch.Tensor)]
    return (sum(t.numel() for t in tensors),
            sum(t.numel() * t.element_size() for t in tensors))


def frozen_fingerprint(model: nn.Module,
                       petl_keys: Sequence[str],
                       samples: int = 4096) -> List[float]:
    """A cheap check that a PETL-only checkpoint is loaded over the frozen
    weights it was trained on: ``[tensors, sum, sum of |x|]`` (float64) of
    up to ``samples`` evenly strided elements of every tensor of ``model``'s
    state outside ``petl_keys`` (a full pass over ViT-B/16's 150 M frozen
    weights would take seconds on a small CPU)."""
    skip = set(petl_keys)
    count, total, absolute = 0, 0.0, 0.0
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key in skip or not isinstance(value, torch.Tensor):
                continue
            flat = value.detach().reshape(-1)
            flat = flat[::max(1, flat.numel() // samples)].double()
            count += 1
            total += float(flat.sum())
            absolute += float(flat.abs().sum())
    return [float(count), total, absolute]


def fingerprints_match(saved: Sequence[float],
                       current: Sequence[float]) -> bool:
    """Whether two :func:`frozen_fingerprint` values agree (up to the
    summation order of another device)."""
    if len(saved) != 3 or len(current) != 3 or saved[0] != current[0]:
        return False
    scale = 1e-6 * max(abs(saved[2]), 1.0)
    return abs(saved[1] - current[1]) <= scale and \
        abs(saved[2] - current[2]) <= scale


def strip_module_prefix(
        state_dict: Dict[str, Any]) -> 'OrderedDict[str, Any]':
    # as Runner.load_checkpoint's revise_keys=[(r'^module\.', '')]
    stripped = OrderedDict(
        (key[len('module.'):] if key.startswith('module.') else key, value)
        for key, value in state_dict.items())
    stripped._metadata = getattr(state_dict, '_metadata', OrderedDict())
    return stripped


def short_key_list(keys: Sequence[str], limit: int = 5) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys)} in all)' if len(keys) > limit
                    else '')


def describe_key_mismatch(expected: Sequence[str],
                          state_dict: Dict[str, Any],
                          model_state: Dict[str, Any]) -> List[str]:
    """How ``state_dict`` differs from the ``expected`` keys of a model
    whose own state is ``model_state``: the missing, unexpected and
    mis-shaped keys (a few of each, then the count); empty if it fits."""
    expected_set = set(expected)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected_set]
    mismatched = [
        f'{k} {tuple(state_dict[k].shape)} vs {tuple(model_state[k].shape)}'
        for k in expected if k in state_dict
        and isinstance(state_dict[k], torch.Tensor)
        and state_dict[k].shape != model_state[k].shape]
    problems = []
    if missing:
        problems.append(f'missing {len(missing)} key(s) of the model: '
                        f'{short_key_list(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected key(s): '
                        f'{short_key_list(unexpected)}')
    if mismatched:
        problems.append(f'{len(mismatched)} key(s) of another shape '
                        f'(checkpoint vs model): {short_key_list(mismatched)}')
    return problems


def check_petl_checkpoint(model: nn.Module,
                          state_dict: Dict[str, Any],
                          source: str = 'the PETL-only checkpoint') -> None:
    """Refuse a PETL-only state dict that does not fit ``model``'s PETL
    setup.

    The keys must be exactly :func:`petl_state_dict_keys` of ``model``
    (a ``module.`` prefix is ignored) with the same shapes.

    Args:
        model (nn.Module): the model (unwrapped), built with its PETL
            techniques.
        state_dict (dict): the checkpoint's ``state_dict``.
        source (str): how the error names the checkpoint.

    Raises:
        CheckpointError: listing the missing, unexpected and mis-shaped keys (a
            few of each, then '...' and the count).
    """
    state_dict = strip_module_prefix(state_dict)
    expected = petl_state_dict_keys(model)
    problems = describe_key_mismatch(expected, state_dict,
                                     model.state_dict())
    if not problems:
        return
    raise CheckpointError(
        f'{source} does not match the PETL setup of the model '
        f'({len(state_dict)} tensors in the checkpoint, {len(expected)} '
        f'trainable/PETL tensors in the model): ' + '; '.join(problems)
        + '. Build the model with the same model.backbone.petl (techniques, '
        'ranks, lengths, layers) and freeze setting as the run that saved '
        'it.')


def complete_petl_state_dict(model: nn.Module,
                             state_dict: Dict[str, Any]
                             ) -> 'OrderedDict[str, Any]':
    """A full state dict: ``model``'s own (frozen) state overlaid with the
    PETL-only ``state_dict``, so that loading it reports no missing keys."""
    state_dict = strip_module_prefix(state_dict)
    full = OrderedDict(model.state_dict())
    full.update(state_dict)
    full._metadata = state_dict._metadata or getattr(
        full, '_metadata', OrderedDict())
    return full


def check_model_record(meta: Dict[str, Any], record: Dict[str, Any],
                       source: str) -> None:
    """Refuse a checkpoint whose recorded model (``meta['mmtpr_model']``,
    see :mod:`mmtpr.utils.model_record`) has another backbone than
    ``record`` (the loading config's): e.g. another ``top_k`` or
    ``image_size``, which its state dict cannot show."""
    saved = meta.get(META_KEY) if isinstance(meta, dict) else None
    if not isinstance(saved, dict):
        return
    problems = record_differences(saved, record, 'backbone')
    if problems:
        raise CheckpointError(
            f'{source} was saved from another model config: '
            + '; '.join(problems[:6]) + '. Load it with the config it was '
            'trained with, or non-strictly.')


def load_petl_checkpoint(model: nn.Module,
                         checkpoint: Union[str, Dict[str, Any]],
                         strict: bool = True,
                         record: Optional[Dict[str, Any]] = None
                         ) -> Dict[str, Any]:
    """Load a checkpoint into a built ``model`` (e.g. for inference).

    A PETL-only checkpoint (``meta['petl_only']``, saved by
    :class:`~mmtpr.engine.hooks.PETLCheckpointHook`) is checked with
    :func:`check_petl_checkpoint` and loaded over the model's frozen
    weights, which must be the ``pretrained`` weights the checkpoint was
    trained on (a warning says when they differ); a full checkpoint must
    have exactly the model's keys and shapes. Files are read with
    ``weights_only=True`` (:func:`mmtpr.utils.load_state_dict_file`).

    Args:
        model (nn.Module): the built model (unwrapped).
        checkpoint (str | dict): a checkpoint file or a loaded checkpoint.
        strict (bool): refuse a checkpoint that does not fit (keys, shapes,
            recorded model). False loads what fits. Defaults to True.
        record (dict, optional): the model record of the loading config
            (:func:`mmtpr.utils.model_record.model_record`), compared with
            the checkpoint's when ``strict``.

    Returns:
        dict: the checkpoint.

    Raises:
        CheckpointError: the checkpoint does not fit the model, naming the
            file and the missing, unexpected and mis-shaped keys.
    """
    path = None
    if not isinstance(checkpoint, dict):
        path, checkpoint = checkpoint, load_state_dict_file(checkpoint)
    state_dict = checkpoint.get('state_dict', checkpoint)
    meta = checkpoint.get('meta') or {}
    kind = 'PETL-only checkpoint' if meta.get('petl_only') else 'checkpoint'
    source = f"{kind} '{path}'" if path else f'the {kind}'
    if not isinstance(state_dict, dict):
        raise CheckpointError(f'{source} has no state dict')
    if strict and record is not None:
        check_model_record(meta, record, source)
    state_dict = strip_module_prefix(state_dict)
    if meta.get('petl_only'):
        if strict:
            check_petl_checkpoint(model, state_dict, source)
        warn_if_frozen_weights_differ(model, meta, source)
        state_dict = complete_petl_state_dict(model, state_dict)
    elif strict:
        check_full_checkpoint(model, state_dict, source)
    if strict:
        model.load_state_dict(state_dict, strict=True)
    else:
        load_what_fits(model, state_dict, source)
    return checkpoint


def check_full_checkpoint(model: nn.Module, state_dict: Dict[str, Any],
                          source: str) -> None:
    """Refuse a full state dict whose keys or shapes differ from
    ``model``'s, naming the missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    problems = describe_key_mismatch(list(own), state_dict, own)
    if problems:
        raise CheckpointError(
            f'{source} does not fit the model of the config: '
            + '; '.join(problems) + '. Use the config it was trained '
            'with (or load it non-strictly).')


def load_what_fits(model: nn.Module, state_dict: Dict[str, Any],
                   source: str) -> None:
    """Load the entries of ``state_dict`` whose key and shape fit
    ``model``; log how many did (non-strict loading)."""
    own = model.state_dict()
    fitting = {k: v for k, v in state_dict.items()
               if k in own and getattr(v, 'shape', None) == own[k].shape}
    result = model.load_state_dict(fitting, strict=False)
    print_log(f'{source}: loaded {len(fitting)} of {len(own)} tensors '
              f'non-strictly ({len(result.missing_keys)} missing, '
              f'{len(state_dict) - len(fitting)} not fitting)',
              logger='current', level=logging.WARNING)


def warn_if_frozen_weights_differ(model: nn.Module, meta: Dict[str, Any],
                                  source: str) -> bool:
    """Log a warning if the model's frozen weights are not those that the
    PETL-only checkpoint was trained on; returns whether they match."""
    saved = meta.get('frozen_fingerprint')
    if saved is None:
        return True
    current = frozen_fingerprint(model, petl_state_dict_keys(model))
    if fingerprints_match(saved, current):
        return True
    print_log(
        f'{source} was trained on other frozen weights than those of the '
        f'model (fingerprint [tensors, sum, sum|x|] {saved} at save time, '
        f'{current} now): its PETL parameters are loaded, but the results '
        'will not be those of training. Build the model with the '
        '`pretrained` weights of the training run.',
        logger='current', level=logging.WARNING)
    return False
