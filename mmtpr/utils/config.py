"""Configs as the tools use them: loading, default work dirs, data roots."""
import copy
import os.path as osp
from typing import Iterable, List, Optional

from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope

from .errors import ConfigError, MissingFileError

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read the config at ``path``, merge ``cfg_options`` (as
    ``--cfg-options``) and set its default scope ('mmtpr' if it names
    none).

    Raises:
        MissingFileError: ``path`` is not a file.
        ConfigError: the file is not a valid config.
    """
    if not osp.isfile(path):
        raise MissingFileError(f"config file '{path}' does not exist")
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, ImportError, KeyError, ValueError, TypeError,
            NameError, AttributeError) as err:
        raise ConfigError(f"config file '{path}' could not be read: "
                          f'{type(err).__name__}: {err}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmtpr'))
    return cfg


def default_work_dir(config_path: str) -> str:
    """``work_dirs/`` plus the config's path under ``configs/`` without
    ``.py`` (e.g. ``work_dirs/up_person/clip_b16_cuhk``), so that configs
    with the same file name in different folders (the baseline, UP-Person
    and DM-Adapter CUHK-PEDES configs) never share a work dir; a config
    outside a ``configs`` folder gets ``work_dirs/<its name>``."""
    parts = osp.normpath(osp.abspath(config_path)).split(osp.sep)
    stem = osp.splitext(parts[-1])[0]
    if 'configs' in parts[:-1]:
        last = len(parts) - 1 - parts[::-1].index('configs')
        below = parts[last + 1:-1]
        return osp.join('work_dirs', *below, stem)
    return osp.join('work_dirs', stem)


def leaf_dataset_cfgs(cfg: dict) -> List[dict]:
    """The dataset configs inside a dataloader or dataset config (through
    ConcatDataset, RepeatDataset and other wrappers)."""
    if 'datasets' in cfg:
        return [d for sub in cfg['datasets'] for d in leaf_dataset_cfgs(sub)]
    if 'dataset' in cfg:
        return leaf_dataset_cfgs(cfg['dataset'])
    return [cfg]


def set_data_root(cfg: Config, data_root: str,
                  loaders: Iterable[str] = LOADERS) -> int:
    """Point the dataset of every given dataloader at ``data_root``; returns
    how many datasets were changed.

    A data root given this way must hold the data: a dataset that can
    generate itself (``SynthPedes(generate=True)``) is told not to, so a
    mistyped path is an error, not a new dataset.
    """
    changed = 0
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for dataset in leaf_dataset_cfgs(cfg[loader]):
            dataset['data_root'] = data_root
            if 'generate' in dataset:
                dataset['generate'] = False
            changed += 1
    if not changed:
        raise ConfigError('the config has no dataset to set data_root on')
    return changed


def as_plain(cfg) -> dict:
    """A ConfigDict as a plain dict (for comparisons and JSON)."""
    return cfg.to_dict() if isinstance(cfg, ConfigDict) else dict(cfg)


def update_tpr_metrics(evaluator, **kwargs) -> int:
    """Set ``kwargs`` on every TPRMetric of an evaluator config (a dict, a
    list of dicts, or an Evaluator dict with ``metrics``); returns how many
    were found."""
    if isinstance(evaluator, (list, tuple)):
        return sum(update_tpr_metrics(e, **kwargs) for e in evaluator)
    if not isinstance(evaluator, dict):
        return 0
    if 'metrics' in evaluator:  # dict(type='Evaluator', metrics=...)
        return update_tpr_metrics(evaluator['metrics'], **kwargs)
    kind = evaluator.get('type')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    if name.split('.')[-1] != 'TPRMetric':
        return 0
    evaluator.update(kwargs)
    return 1


def collect_in_work_dir(cfg: Config) -> None:
    """Let distributed evaluation exchange its per-rank results in the work
    dir (MMEngine's default is a ``.dist_test/`` folder in the current
    directory, which it leaves behind); MMEngine removes the folder after
    each exchange."""
    if cfg.get('launcher', 'none') == 'none':
        return
    folder = osp.join(cfg.work_dir, '.collect')
    for key in ('val_evaluator', 'test_evaluator'):
        if cfg.get(key):
            cfg[key] = copy.deepcopy(cfg[key])
            update_tpr_metrics(cfg[key], collect_dir=folder)
