"""MMEngine's Runner with safe checkpoint loading and safe, exact resume."""
import os.path as osp
import pickle
import re
from typing import Any, Callable, Dict, List, Optional, Union

from mmengine.device import get_device
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict

from mmtpr.registry import RUNNERS
from mmtpr.utils.checkpoint import load_state_dict_file
from mmtpr.utils.errors import CheckpointError
from mmtpr.utils.fileio import remove_stale_temps
from mmtpr.utils.model_record import (
    META_KEY,
    model_record,
    record_differences,
)

# The name a best checkpoint of CheckpointHook has: best_<key>_<file>.pth
_BEST_NAME = re.compile(r'^best_[^/\\]+\.pth$')
# the config file a checkpoint was saved from (named in errors)
CONFIG_KEY = 'mmtpr_config'
# what MMEngine strips from state-dict keys (a DDP wrapper's prefix)
_REVISE_KEYS = [(r'^module\.', '')]


def _key_problems(model, state_dict: Dict[str, Any]) -> List[str]:
    from mmtpr.models.petl.checkpoint import describe_key_mismatch
    own = model.state_dict()
    return describe_key_mismatch(list(own), state_dict, own)


@RUNNERS.register_module()
class TPRRunner(Runner):
    """MMEngine's :class:`~mmengine.runner.Runner` for mmtpr's runs.

    Selected by ``runner_type = 'TPRRunner'`` (mmtpr's default runtime).
    It changes how checkpoints are read, and nothing else:

    - every checkpoint is read by
      :func:`mmtpr.utils.checkpoint.load_checkpoint_file`
      (``weights_only=True``, explicitly; integrity checks; errors that name
      the file), never by MMEngine's loader;
    - ``load_from`` (e.g. ``tools/test.py``) loads strictly by default:
      missing, unexpected or mis-shaped keys are an error naming the file
      and the keys, and so is a checkpoint whose recorded model
      (``meta['mmtpr_model']``, written at every save) has another
      backbone than the config (e.g. another ``top_k`` or ``image_size``,
      which a state dict cannot show). ``load_strict=False`` in the config
      (``tools/test.py --non-strict``) opts out of both;
    - ``resume`` never executes anything stored in the checkpoint
      (MMEngine's turns ``meta['config']`` into Python and runs it), refuses
      a checkpoint that is not a training checkpoint or was saved from
      another model config (naming both), and trusts no path the
      checkpoint names: a best checkpoint recorded in the message hub is
      only ever looked for as ``best_*.pth`` in this run's checkpoint
      folder (MMEngine would delete whatever path it names); temp files
      of interrupted saves in that folder are removed.

    Args:
        *args, **kwargs: those of :class:`~mmengine.runner.Runner`.
    """

    load_strict: bool = True

    @classmethod
    def from_cfg(cls, cfg) -> 'TPRRunner':
        runner = super().from_cfg(cfg)
        runner.load_strict = bool(cfg.get('load_strict', True))
        return runner

    # -- reading ----------------------------------------------------------
    @property
    def _unwrapped_model(self):
        model = self.model
        return model.module if is_model_wrapper(model) else model

    def _check_record(self, checkpoint: dict, filename: str,
                      resume: bool) -> None:
        meta = checkpoint.get('meta')
        saved = meta.get(META_KEY) if isinstance(meta, dict) else None
        if not isinstance(saved, dict) or not self.cfg.get('model'):
            return
        current = model_record(self.cfg.model)
        part = None if resume else 'backbone'
        problems = record_differences(saved, current, part)
        if problems:
            action = 'resume from' if resume else 'load'
            source = meta.get(CONFIG_KEY)
            raise CheckpointError(
                f"cannot {action} '{filename}': it was saved from another "
                'model config'
                + (f' ({source})' if isinstance(source, str) else '')
                + f' than {self.cfg.filename or "this config"} ('
                + '; '.join(problems[:6])
                + (f'; ... {len(problems)} differences in all'
                   if len(problems) > 6 else '') + ')'
                + ('' if resume else '. Pass --non-strict (load_strict='
                   'False) to load it anyway.'))

    def _load_into_model(self, checkpoint: dict, filename: str,
                         strict: bool, revise_keys: list) -> None:
        state_dict = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state_dict, dict):
            raise CheckpointError(f"'{filename}' has no state dict")
        metadata = getattr(state_dict, '_metadata', None)
        for pattern, replacement in revise_keys:
            state_dict = type(state_dict)(
                (re.sub(pattern, replacement, k), v)
                for k, v in state_dict.items())
        if metadata is not None:
            state_dict._metadata = metadata
        model = self._unwrapped_model
        if strict:
            problems = _key_problems(model, state_dict)
            if problems:
                raise CheckpointError(
                    f"checkpoint '{filename}' does not fit the model of the "
                    'config: ' + '; '.join(problems) + '. Use the config it '
                    'was trained with, or pass --non-strict (load_strict='
                    'False) to load what fits.')
        load_state_dict(model, state_dict, strict=strict, logger='current')

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: Optional[bool] = None,
                        revise_keys: Optional[list] = None):
        """Load a checkpoint into the model (see the class docstring).

        ``strict=None`` means the config's ``load_strict`` (True unless
        set).
        """
        strict = self.load_strict if strict is None else strict
        revise_keys = _REVISE_KEYS if revise_keys is None else revise_keys
        checkpoint = load_state_dict_file(filename)
        if strict:
            self._check_record(checkpoint, filename, resume=False)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        self._load_into_model(checkpoint, filename, strict, revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    # -- resuming ---------------------------------------------------------
    def _checkpoint_dirs(self) -> List[str]:
        dirs = [self.work_dir]
        for hook in self.hooks:
            if isinstance(hook, CheckpointHook) and hook.out_dir:
                out = hook.out_dir
                if out != self.work_dir:
                    out = osp.join(out, osp.basename(
                        self.work_dir.rstrip(osp.sep)))
                dirs.append(out)
        return dirs

    def _owned_best(self, value: Any, key: str) -> Optional[str]:
        """The path of ``value`` in this run's checkpoint folder, if it is
        the name of a best checkpoint; None otherwise."""
        if not isinstance(value, str) or not _BEST_NAME.match(
                osp.basename(value)):
            return None
        out_dir = self._checkpoint_dirs()[-1]
        path = osp.join(out_dir, osp.basename(value))
        if osp.islink(path) or osp.isdir(path):
            return None
        if osp.abspath(value) != osp.abspath(path):
            self.logger.warning(
                f'resume: the checkpoint names {value!r} as {key}; it is '
                f'looked for as {path} in this run\'s checkpoint folder')
        return path

    def _sanitize_message_hub(self, hub: Any, filename: str) -> dict:
        if not isinstance(hub, dict) or not isinstance(
                hub.get('runtime_info', {}), dict):
            raise CheckpointError(
                f"cannot resume from '{filename}': its message_hub is not "
                'the state of an MMEngine MessageHub')
        hub = dict(hub)
        info = dict(hub.get('runtime_info', {}))
        for key in [k for k in info if k == 'best_ckpt'
                    or str(k).startswith('best_ckpt_')]:
            path = self._owned_best(info[key], key)
            if path is None:
                self.logger.warning(
                    f'resume: ignoring {key}={info[key]!r} from '
                    f"'{filename}': only best_*.pth files in this run's "
                    'checkpoint folder are ever replaced')
                info.pop(key)
            else:
                info[key] = path
        ids = info.get('keep_ckpt_ids')
        if ids is not None and not (isinstance(ids, list) and all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0
                for i in ids)):
            self.logger.warning(f'resume: ignoring keep_ckpt_ids={ids!r} '
                                'from the checkpoint (not epoch numbers)')
            info.pop('keep_ckpt_ids')
        hub['runtime_info'] = info
        return hub

    @staticmethod
    def _check_resumable(checkpoint: dict, filename: str) -> dict:
        meta = checkpoint.get('meta')
        missing = [k for k in ('meta', 'message_hub', 'state_dict')
                   if k not in checkpoint]
        if missing:
            kind = ('a bare state dict' if 'state_dict' in missing else
                    'a checkpoint without ' + ' and '.join(missing))
            raise CheckpointError(
                f"cannot resume from '{filename}': it is {kind}, not a "
                'training checkpoint (resume needs its meta, message hub and'
                ' optimizer state). Load its weights with load_from (or '
                'tools/test.py) instead.')
        numbers = [meta.get(k) if isinstance(meta, dict) else None
                   for k in ('epoch', 'iter')]
        if not all(isinstance(n, int) and not isinstance(n, bool)
                   and n >= 0 for n in numbers):
            raise CheckpointError(
                f"cannot resume from '{filename}': its meta has no valid "
                f'epoch and iter (got {numbers})')
        return meta

    def resume(self,
               filename: str,
               resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """Resume training from a checkpoint (see the class docstring)."""
        if map_location == 'default':
            map_location = get_device()
        checkpoint = load_state_dict_file(filename)
        meta = self._check_resumable(checkpoint, filename)
        self._check_record(checkpoint, filename, resume=True)
        hub = self._sanitize_message_hub(checkpoint['message_hub'],
                                         filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        self._load_into_model(checkpoint, filename, self.load_strict,
                              _REVISE_KEYS)
        self.train_loop._epoch = meta['epoch']
        self.train_loop._iter = meta['iter']
        self._resume_seed(meta)
        self._warn_dataset_meta(meta)
        self.message_hub.load_state_dict(hub)
        if 'optimizer' in checkpoint and resume_optimizer:
            self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
            self.optim_wrapper.load_state_dict(checkpoint['optimizer'])
        if resume_param_scheduler and 'param_schedulers' in checkpoint \
                and self.param_schedulers is not None:
            self._resume_schedulers(checkpoint['param_schedulers'])
        for directory in self._checkpoint_dirs():
            removed = remove_stale_temps(directory)
            if removed:
                self.logger.info(f'resume: removed {removed} temp file(s) '
                                 f'of interrupted saves in {directory}')
        self._has_loaded = True
        self.logger.info(f'resumed epoch: {self.epoch}, iter: {self.iter}')

    def _resume_seed(self, meta: dict) -> None:
        resumed_seed = meta.get('seed')
        current_seed = self._randomness_cfg.get('seed')
        if isinstance(resumed_seed, int) and resumed_seed != current_seed:
            if current_seed is not None:
                self.logger.warning(
                    f'The random seed in the checkpoint ({resumed_seed}) '
                    f'differs from the config\'s ({current_seed}); using '
                    'the checkpoint\'s')
            self._randomness_cfg.update(seed=resumed_seed)
            self.set_randomness(**self._randomness_cfg)

    def _warn_dataset_meta(self, meta: dict) -> None:
        current = getattr(self.train_dataloader.dataset, 'metainfo', None)
        if pickle.dumps(meta.get('dataset_meta')) != pickle.dumps(current):
            self.logger.warning(
                'The dataset metainfo of the resumed checkpoint differs from '
                'the current training dataset; check the checkpoint and the '
                'training data.')

    def _resume_schedulers(self, states: Any) -> None:
        self.param_schedulers = self.build_param_scheduler(
            self.param_schedulers)
        if isinstance(self.param_schedulers, dict):
            for name, schedulers in self.param_schedulers.items():
                for scheduler, state in zip(schedulers, states[name]):
                    scheduler.load_state_dict(state)
        else:
            for scheduler, state in zip(self.param_schedulers, states):
                scheduler.load_state_dict(state)

    # -- saving -----------------------------------------------------------
    def save_checkpoint(self, out_dir: str, filename: str,
                        *args, meta: Optional[dict] = None, **kwargs):
        """MMEngine's save, with the model's config recorded in
        ``meta['mmtpr_model']`` (see :mod:`mmtpr.utils.model_record`)."""
        meta = dict(meta or {})
        if self.cfg.get('model'):
            meta.setdefault(META_KEY, model_record(self.cfg.model))
        if self.cfg.filename:
            meta.setdefault(CONFIG_KEY, self.cfg.filename)
        return super().save_checkpoint(out_dir, filename, *args, meta=meta,
                                       **kwargs)

