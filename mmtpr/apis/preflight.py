"""Checks a tool runs before it builds anything: the files a run needs."""
from typing import Iterable

from mmengine.config import Config

from mmtpr.registry import DATASETS
from mmtpr.utils.config import leaf_dataset_cfgs


def preflight(cfg: Config,
              loaders: Iterable[str] = ('train_dataloader',
                                        'val_dataloader')) -> None:
    """Check that the data roots and annotation files of the datasets of
    ``loaders`` exist, and the CLIP weights file the model names, so that a
    wrong path fails in one clear line before a runner is built (and
    before its config dump and environment log).

    Raises:
        MissingFileError: naming the path and what was expected there.
    """
    from mmtpr.models.backbones.clip_weights import resolve_pretrained
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for dataset in leaf_dataset_cfgs(cfg[loader]):
            kind = dataset.get('type')
            cls = DATASETS.get(kind) if isinstance(kind, str) else kind
            check = getattr(cls, 'check_files', None)
            if check is not None:
                check(dataset)
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    pretrained = backbone.get('pretrained')
    if isinstance(pretrained, str):
        resolve_pretrained(backbone.get('model_name', 'ViT-B-16'),
                           pretrained)
