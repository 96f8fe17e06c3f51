"""A test-only hook (loaded with ``custom_imports``) that writes, per rank,
what the rank saw: its training samples, logged losses, iterations, the
model wrapper, and the test metrics."""
import json
import os.path as osp

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtpr.registry import HOOKS


@HOOKS.register_module(force=True)
class RecordRankHook(Hook):
    """Dump ``rank{r}.json`` into the work dir after training / testing."""

    def __init__(self):
        self.seen, self.losses = [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen += [[s.img_path, s.caption]
                      for s in data_batch['data_samples']]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(float(outputs['loss_sdm'].detach()))

    def _dump(self, runner, **extra):
        model = runner.model
        module = model.module if is_model_wrapper(model) else model
        record = dict(rank=runner.rank, world_size=runner.world_size,
                      wrapper=type(model).__name__,
                      gathers=module.head.gathers(), iters=runner.iter,
                      seen=self.seen, losses=self.losses, **extra)
        with open(osp.join(runner.work_dir, f'rank{runner.rank}.json'),
                  'w') as f:
            json.dump(record, f)

    def after_train_epoch(self, runner):
        self._dump(runner)

    def after_test_epoch(self, runner, metrics=None):
        self._dump(runner, metrics=metrics)
