"""worker_seed_from_torch: augmentations differ between epochs and repeat
exactly from the same main-process random state."""
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmtpr.datasets import worker_seed_from_torch
from mmtpr.registry import FUNCTIONS


class Draws(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return (random.random(), float(np.random.rand()),
                float(torch.rand(())))


def epoch(loader):
    return [tuple(float(v) for v in item) for batch in loader
            for item in zip(*batch)]


def test_epochs_differ_and_resume_repeats_them():
    assert FUNCTIONS.get('worker_seed_from_torch') is worker_seed_from_torch
    loader = DataLoader(Draws(), batch_size=2, num_workers=2,
                        worker_init_fn=worker_seed_from_torch,
                        persistent_workers=False)
    torch.manual_seed(0)
    first, second = epoch(loader), epoch(loader)
    assert len(set(first)) == 4  # workers and samples differ
    assert set(first).isdisjoint(second)  # epochs differ
    state = torch.get_rng_state()
    third = epoch(loader)
    torch.set_rng_state(state)  # what a resumed run restores
    assert epoch(loader) == third
    torch.manual_seed(0)
    assert epoch(loader) == first


def test_paper_configs_use_it_with_non_persistent_workers():
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import FUNCTIONS as ROOT_FUNCTIONS
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for name in ('up_person/clip_b16_cuhk.py', 'dm_adapter/clip_b16_icfg.py',
                 'baseline/clip_b16_cuhk.py', 'up_person/clip_b16_rstp.py'):
        loader = Config.fromfile(osp.join(root, 'configs', name)) \
            .train_dataloader
        assert loader.persistent_workers is False, name
        # how MMEngine's Runner.build_dataloader looks it up
        assert ROOT_FUNCTIONS.get(loader.worker_init_fn.type) is \
            worker_seed_from_torch, name
