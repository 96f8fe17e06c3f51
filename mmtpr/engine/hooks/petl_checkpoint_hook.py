"""PETL-only checkpoints: save the trainable parameters, load them over the
pretrained CLIP after checking that the PETL setup matches."""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtpr.models.petl.checkpoint import (
    check_petl_checkpoint,
    complete_petl_state_dict,
    frozen_fingerprint,
    petl_state_dict_keys,
    select_state_dict,
    state_dict_size,
    warn_if_frozen_weights_differ,
)
from mmtpr.registry import HOOKS


@HOOKS.register_module()
class PETLCheckpointHook(Hook):
    """Save PETL-only checkpoints and check them when they are loaded.

    With ``petl_only=True`` every checkpoint that the runner saves
    (:class:`CheckpointHook`'s periodic, last and best ones) keeps in its
    ``state_dict`` only the keys of
    :func:`~mmtpr.models.petl.checkpoint.petl_state_dict_keys`: the trainable
    parameters and the state of the PETL modules (7.4 M parameters, 30 MB
    for UP-Person on ViT-B/16 instead of 150 M and 600 MB). The rest of the
    checkpoint is MMEngine's as usual (optimizer state, parameter
    schedulers, message hub, and the random states of
    :class:`RandomStateHook`), so ``resume`` works. ``meta`` records
    ``petl_only=True``, ``petl_keys`` (the list of keys) and
    ``frozen_fingerprint`` (a checksum of the frozen weights it was trained
    on).

    Whatever ``petl_only`` is, when a PETL-only checkpoint is loaded
    (``load_from``, ``resume``, ``tools/test.py``) the hook checks it against
    the model in ``after_load_checkpoint``, which
    :meth:`Runner.load_checkpoint` calls before it loads the state dict into
    the model: a model whose PETL setup differs (other techniques, ranks,
    prefix lengths, layers) is refused with a ``ValueError`` listing the
    missing, unexpected and mis-shaped keys; frozen weights other than
    those of training (a different ``pretrained``) give a warning. The
    state dict is then completed with the model's own frozen weights (the
    ``pretrained`` CLIP loaded when the model was built), so the model is
    loaded in full, without missing-key warnings.

    Every save logs the size of the saved state dict (parameters and MB).

    Args:
        petl_only (bool): save only the trainable / PETL state. Defaults to
            False.

    Example:
        >>> default_hooks = dict(
        ...     petl_checkpoint=dict(type='PETLCheckpointHook',
        ...                          petl_only=True))
    """

    priority = 'NORMAL'

    def __init__(self, petl_only: bool = False) -> None:
        if not isinstance(petl_only, bool):
            raise TypeError(f'petl_only must be a bool, got {petl_only!r}')
        self.petl_only = petl_only
        # (keys, fingerprint) of the frozen weights, computed once per run
        self._frozen: Optional[tuple] = None

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _fingerprint(self, model, keys: List[str]) -> List[float]:
        if self._frozen is None or self._frozen[0] != keys:
            self._frozen = (keys, frozen_fingerprint(model, keys))
        return self._frozen[1]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = self._model(runner)
        kind = 'full'
        if self.petl_only:
            keys = petl_state_dict_keys(model)
            if not keys:
                runner.logger.warning(
                    'PETLCheckpointHook: the model has no trainable '
                    'parameters and no PETL modules; saving the full state '
                    'dict')
            else:
                checkpoint['state_dict'] = select_state_dict(
                    checkpoint['state_dict'], keys)
                checkpoint.setdefault('meta', {}).update(
                    petl_only=True, petl_keys=keys,
                    frozen_fingerprint=self._fingerprint(model, keys))
                kind = 'PETL-only'
        numel, nbytes = state_dict_size(checkpoint['state_dict'])
        runner.logger.info(
            f'PETLCheckpointHook: saving a {kind} state dict of {numel:,} '
            f'parameters in {len(checkpoint["state_dict"])} tensors, '
            f'{nbytes / 1e6:.1f} MB')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        if not meta.get('petl_only'):
            return
        model = self._model(runner)
        source = (f"PETL-only checkpoint (epoch {meta.get('epoch')}, iter "
                  f"{meta.get('iter')}, experiment "
                  f"{meta.get('experiment_name')})")
        load_from = getattr(runner, '_load_from', None)
        if isinstance(load_from, str):
            source = f"PETL-only checkpoint '{load_from}'"
        check_petl_checkpoint(model, checkpoint['state_dict'], source)
        warn_if_frozen_weights_differ(model, meta, source)
        checkpoint['state_dict'] = complete_petl_state_dict(
            model, checkpoint['state_dict'])
