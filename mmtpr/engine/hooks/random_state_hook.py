"""Save the random number generators in checkpoints, restore them on
resume, and keep validation from consuming them: exact resume."""
import logging
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from mmtpr.registry import HOOKS

CHECKPOINT_KEY = 'rng_states'


def get_random_states() -> Dict[str, Any]:
    """The states of Python's, numpy's and torch's global generators (and
    of every CUDA device's, once CUDA is initialised), as tensors and plain
    Python values that ``torch.load(weights_only=True)`` reads back."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = dict(
        python=random.getstate(),
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=pos,
                   has_gauss=has_gauss,
                   cached_gaussian=float(cached_gaussian)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: Dict[str, Any]) -> None:
    """Restore what :func:`get_random_states` returned."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    numpy = states['numpy']
    np.random.set_state(
        ('MT19937', numpy['keys'].cpu().numpy().astype(np.uint32),
         int(numpy['pos']), int(numpy['has_gauss']),
         float(numpy['cached_gaussian'])))
    # resume() maps the checkpoint to the training device; the generator
    # states must be CPU byte tensors
    torch.set_rng_state(states['torch'].cpu())
    cuda = states.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if len(cuda) != count:
            print_log(
                f'the checkpoint holds the random states of {len(cuda)} '
                f'CUDA devices, this process sees {count}: restoring the '
                f'first {min(len(cuda), count)}',
                logger='current', level=logging.WARNING)
        for device, state in enumerate(cuda[:count]):
            torch.cuda.set_rng_state(state.cpu(), device)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make ``resume`` continue exactly as if training had not stopped.

    MMEngine seeds the generators once, when the runner is built, and does
    not save their states, so a resumed run draws other augmentations
    (flips, crops, caption masks, random erasing) than the uninterrupted
    one. This hook

    - stores the states of Python's, numpy's and torch's (CPU and CUDA)
      global generators in every checkpoint, as ``checkpoint['rng_states']``
      (``before_save_checkpoint``);
    - restores them when training resumes from that checkpoint, just before
      the first resumed epoch (``after_load_checkpoint`` keeps them,
      ``before_train_epoch`` restores them; ``load_from`` without
      ``resume`` trains from iteration 0 and restores nothing);
    - makes validation neutral: the states at ``before_val`` are restored
      at ``after_val_epoch``. :class:`CheckpointHook` saves the epoch's
      checkpoint in ``after_train_epoch``, *before* the validation of that
      epoch, whose dataloader iterator draws from torch's generator; without
      this, the uninterrupted run would continue from the states after
      validation and the resumed one from those before it. The priority
      (HIGHEST) restores them before CheckpointHook's ``after_val_epoch``
      saves a best checkpoint, which therefore holds the same states.

    With these, resuming from an epoch-end checkpoint on the same hardware
    and software gives bit-identical weights and metrics (on the CPU; GPU
    kernels may be non-deterministic themselves) under one condition: the
    train dataloader must not keep persistent workers (``num_workers=0``,
    or ``persistent_workers=False``, with which MMEngine's
    ``worker_init_fn`` seeds every epoch's workers alike). Persistent
    workers carry their own generators across epochs, which no checkpoint
    holds; the hook warns about them before training. Iteration-based
    training (and checkpoints in the middle of an epoch) resume correctly
    but not exactly: MMEngine replays the skipped batches through the
    pipeline. In distributed training the checkpoint holds rank 0's states
    and every rank restores them, which is exact when the ranks share a
    seed (``randomness.diff_rank_seed=False``, the default).

    Example:
        >>> default_hooks = dict(rng_state=dict(type='RandomStateHook'))
    """

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self._resumed: Optional[Dict[str, Any]] = None
        self._before_val: Optional[Dict[str, Any]] = None

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        if getattr(loader, 'num_workers', 0) > 0 and \
                getattr(loader, 'persistent_workers', False):
            runner.logger.warning(
                'RandomStateHook: the train dataloader keeps persistent '
                'workers, whose random generators are not saved in '
                'checkpoints: resuming from this run will not reproduce the '
                'uninterrupted run exactly. Set '
                'train_dataloader.persistent_workers=False (or '
                'num_workers=0) for exact resume.')
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        if runner.world_size > 1 and randomness.get('diff_rank_seed'):
            runner.logger.warning(
                'RandomStateHook: with diff_rank_seed=True every rank has '
                "its own random states, but checkpoints hold rank 0's: "
                'resume will not be exact.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = get_random_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        self._resumed = dict(states=checkpoint.get(CHECKPOINT_KEY),
                             epoch=meta.get('epoch'), iter=meta.get('iter'))

    def _restore_resumed(self, runner) -> None:
        """Restore the resumed checkpoint's random states, once, before the
        first thing that draws from them after resuming (the resumed
        epoch's validation, see TPRTrainLoop, or the next epoch)."""
        loaded, self._resumed = self._resumed, None
        # Runner.resume() sets the loop's epoch and iteration from the
        # checkpoint; load_from leaves them at 0.
        if loaded is None or not loaded['iter'] or \
                (runner.epoch, runner.iter) != (loaded['epoch'],
                                                loaded['iter']):
            return
        if loaded['states'] is None:
            runner.logger.warning(
                'RandomStateHook: the resumed checkpoint holds no random '
                'states (saved without this hook): training continues, but '
                'not exactly as the interrupted run would have.')
            return
        set_random_states(loaded['states'])
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            runner.logger.warning(
                'RandomStateHook: iteration-based training replays the '
                'skipped batches through the data pipeline after the random '
                'states are restored: resume is not exact.')
        runner.logger.info('RandomStateHook: restored the random states of '
                           'the checkpoint (python, numpy, torch' +
                           (', cuda' if 'cuda' in loaded['states'] else '')
                           + ')')

    def before_train_epoch(self, runner) -> None:
        self._restore_resumed(runner)

    def before_val(self, runner) -> None:
        if self._resumed is not None and runner.train_loop is not None:
            self._restore_resumed(runner)
        self._before_val = get_random_states()

    def after_val_epoch(self, runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        if self._before_val is not None:
            set_random_states(self._before_val)
            self._before_val = None
