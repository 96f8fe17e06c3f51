"""RandomStateHook: random states in checkpoints, restored on resume only,
validation that does not consume them; registered for every config."""
import io
import os.path as osp
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import build_runner, tiny_cfg
from mmengine.config import Config

from mmtpr.engine.hooks import RandomStateHook
from mmtpr.engine.hooks.random_state_hook import (
    get_random_states,
    set_random_states,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def draw():
    """One draw from each global generator (numpy twice, to use its cached
    gaussian)."""
    return (random.random(), np.random.rand(), np.random.randn(),
            torch.rand(3).tolist())


class Logger:

    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)


def fake_runner(epoch=0, iter=0, num_workers=0, persistent_workers=False,
                world_size=1, diff_rank_seed=False):
    return SimpleNamespace(
        epoch=epoch, iter=iter, logger=Logger(), train_loop=object(),
        world_size=world_size,
        _randomness_cfg=dict(seed=0, diff_rank_seed=diff_rank_seed),
        train_dataloader=SimpleNamespace(
            num_workers=num_workers, persistent_workers=persistent_workers))


def saved_checkpoint(hook, epoch, iter):
    """A checkpoint that went through before_save_checkpoint, torch.save and
    torch.load(weights_only=True)."""
    checkpoint = dict(meta=dict(epoch=epoch, iter=iter))
    hook.before_save_checkpoint(fake_runner(), checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_states_round_trip_through_a_weights_only_checkpoint():
    np.random.randn()  # leave a cached gaussian in numpy's state
    hook = RandomStateHook()
    checkpoint = saved_checkpoint(hook, epoch=1, iter=6)
    assert set(checkpoint['rng_states']) >= {'python', 'numpy', 'torch'}
    expected = draw()
    draw()
    set_random_states(checkpoint['rng_states'])
    assert draw() == expected


def test_resume_restores_the_states_before_the_first_epoch():
    hook = RandomStateHook()
    checkpoint = saved_checkpoint(hook, epoch=1, iter=6)
    expected = draw()
    runner = fake_runner(epoch=1, iter=6)  # as Runner.resume() left it
    hook.after_load_checkpoint(runner, checkpoint)
    draw()  # building the optimizer, hooks' before_train ...
    hook.before_train_epoch(runner)
    assert draw() == expected
    assert 'restored the random states' in runner.logger.infos[0]
    # only once: the next epoch continues
    hook.before_train_epoch(runner)
    assert draw() != expected


def test_load_from_does_not_restore_the_states():
    hook = RandomStateHook()
    checkpoint = saved_checkpoint(hook, epoch=1, iter=6)
    expected = draw()
    runner = fake_runner(epoch=0, iter=0)  # load_from trains from 0
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    assert draw() != expected
    assert not runner.logger.infos and not runner.logger.warnings


def test_resume_from_a_checkpoint_without_states_warns():
    hook = RandomStateHook()
    runner = fake_runner(epoch=1, iter=6)
    hook.after_load_checkpoint(runner, dict(meta=dict(epoch=1, iter=6)))
    hook.before_train_epoch(runner)
    assert 'holds no random states' in runner.logger.warnings[0]


def test_validation_does_not_consume_the_states():
    hook = RandomStateHook()
    runner = fake_runner()
    state = get_random_states()
    expected = draw()
    set_random_states(state)
    hook.before_val(runner)
    draw()  # the val dataloader's iterator draws a base seed
    hook.after_val_epoch(runner, metrics={})
    assert draw() == expected


@pytest.mark.parametrize('kwargs, warning', [
    (dict(num_workers=2, persistent_workers=True), 'persistent workers'),
    (dict(world_size=2, diff_rank_seed=True), 'diff_rank_seed=True'),
])
def test_warns_when_resume_cannot_be_exact(kwargs, warning):
    runner = fake_runner(**kwargs)
    RandomStateHook().before_train(runner)
    assert len(runner.logger.warnings) == 1
    assert warning in runner.logger.warnings[0]


@pytest.mark.parametrize('kwargs', [
    dict(num_workers=0, persistent_workers=True),
    dict(num_workers=2, persistent_workers=False),
    dict(world_size=2, diff_rank_seed=False),
])
def test_no_warning_when_resume_is_exact(kwargs):
    runner = fake_runner(**kwargs)
    RandomStateHook().before_train(runner)
    assert runner.logger.warnings == []


@pytest.mark.parametrize('config, petl_only', [
    ('configs/up_person/clip_b16_cuhk.py', True),
    ('configs/up_person/clip_b16_rstp.py', True),
    ('configs/dm_adapter/clip_b16_icfg.py', True),
    ('configs/dm_adapter/clip_b16_cuhk_rstp_2domains.py', True),
    ('configs/demo/clip_tiny_synth.py', False),
    # the demo's methods keep PETL-only checkpoints over the pre-trained
    # tiny CLIP (tools/test.py loads them with its weights file)
    ('configs/demo/dm_adapter_tiny_synth.py', True),
    ('configs/demo/up_person_tiny_synth.py', True),
])
def test_every_config_has_the_checkpoint_hooks(config, petl_only):
    cfg = Config.fromfile(osp.join(ROOT, config))
    hooks = cfg.default_hooks
    assert hooks.rng_state.type == 'RandomStateHook'
    assert hooks.petl_checkpoint.type == 'PETLCheckpointHook'
    assert hooks.petl_checkpoint.petl_only is petl_only


def test_configs_with_custom_hooks_keep_the_hooks(tmp_path):
    cfg = tiny_cfg(tmp_path / 'w', str(tmp_path / 'synth'),
                   custom_hooks=[dict(type='LoadBalanceLossHook')])
    runner = build_runner(cfg)
    names = [type(hook).__name__ for hook in runner.hooks]
    assert {'RandomStateHook', 'PETLCheckpointHook',
            'LoadBalanceLossHook'} <= set(names)
    # HIGHEST: it restores the states before CheckpointHook saves a best
    # checkpoint in after_val_epoch
    assert names.index('RandomStateHook') < names.index('CheckpointHook')
