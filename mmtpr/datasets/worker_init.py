"""Seeding of dataloader workers that keeps resume exact."""
import os
import random

import numpy as np
import torch

from mmtpr.registry import FUNCTIONS


@FUNCTIONS.register_module()
def worker_seed_from_torch(worker_id: int) -> None:
    """Seed a dataloader worker from the seed PyTorch gave it, and the rank.

    PyTorch seeds each worker's torch generator with ``base_seed +
    worker_id``, where ``base_seed`` is drawn from the main process's torch
    generator whenever an iterator starts (every epoch with non-persistent
    workers). Seeding Python's, numpy's and torch's generators of the worker
    from it (mixed with the distributed rank) makes the random
    augmentations differ between epochs and between ranks (MMEngine's
    default init function gives every epoch the same streams), and, since
    :class:`~mmtpr.engine.hooks.RandomStateHook` restores the main
    process's generators on resume, a resumed run draws exactly the
    augmentations of an uninterrupted one.

    Use it with ``persistent_workers=False`` (persistent workers keep their
    generators across epochs, which a resumed run cannot reproduce)::

        train_dataloader = dict(
            persistent_workers=False,
            worker_init_fn=dict(type='mmtpr.worker_seed_from_torch'),
            ...)
    """
    rank = int(os.environ.get('RANK', 0))
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**32
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
