"""Exact resume: a training run killed with SIGKILL right after a checkpoint
and resumed with ``tools/train.py --resume`` ends with the same weights,
optimizer state, losses and metrics, bit for bit, as an uninterrupted run.

The runs use a frozen tiny CLIP with UP-Person's PETL techniques, PETL-only
checkpoints and every random augmentation (flip, crop, caption masking,
random erasing), with ``num_workers=0``."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys

import torch
from helpers.resume_cfg import resume_cfg

from mmtpr.registry import DATASETS
from mmtpr.utils.checkpoint import load_checkpoint_file

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(ROOT, 'tools', 'train.py')


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [osp.join(ROOT, 'tests'), ROOT, env.get('PYTHONPATH', '')])
    # the same kernels in every process; two runs share the two cores
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               HF_HUB_OFFLINE='1')
    return env


def _train(config, work_dir, *args):
    """Start ``tools/train.py`` with its output in ``<work_dir>.<n>.log``."""
    path = f'{work_dir}.{len(glob.glob(work_dir + ".*.log"))}.log'
    with open(path, 'w') as log:
        return subprocess.Popen(
            [sys.executable, TRAIN, config, '--work-dir', work_dir, *args],
            stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)


def _scalars(work_dir):
    """The logged scalars of the latest run in ``work_dir``."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f]


def _check(proc, work_dir, returncode=0):
    code = proc.wait(timeout=300)
    if code != returncode:
        logs = sorted(glob.glob(work_dir + '.*.log'))
        with open(logs[-1]) as f:
            raise AssertionError(
                f'exit code {code}, expected {returncode}:\n'
                + f.read()[-3000:])


def test_sigkill_after_checkpoint_then_resume_is_exact(tmp_path):
    data_root = str(tmp_path / 'synth')
    ref_dir, run_dir = str(tmp_path / 'ref'), str(tmp_path / 'run')
    cfg = resume_cfg(ref_dir, data_root, max_epochs=2)
    DATASETS.build(cfg.train_dataloader.dataset)  # generate the data once
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    cfg.custom_imports = dict(imports=['helpers.kill_after_checkpoint'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='KillAfterCheckpointHook', epoch=1)]
    killed_config = str(tmp_path / 'tiny_killed.py')
    cfg.dump(killed_config)

    reference = _train(config, ref_dir)
    killed = _train(killed_config, run_dir)
    _check(killed, run_dir, returncode=-signal.SIGKILL)
    assert osp.isfile(osp.join(run_dir, 'epoch_1.pth'))
    assert not osp.exists(osp.join(run_dir, 'epoch_2.pth'))
    resumed = _train(config, run_dir, '--resume')
    _check(reference, ref_dir)
    _check(resumed, run_dir)
    with open(sorted(glob.glob(run_dir + '.*.log'))[-1]) as f:
        log = f.read()
    assert 'resumed epoch: 1, iter: 6' in log
    assert 'restored the random states' in log

    ref = load_checkpoint_file(osp.join(ref_dir, 'epoch_2.pth'))
    run = load_checkpoint_file(osp.join(run_dir, 'epoch_2.pth'))
    # PETL-only checkpoints: every trainable parameter, nothing frozen
    assert run['meta']['petl_only'] and ref['state_dict'].keys() == \
        run['state_dict'].keys() == set(run['meta']['petl_keys'])
    assert len(ref['state_dict']) == 43
    for key, value in ref['state_dict'].items():
        assert torch.equal(value, run['state_dict'][key]), key
    ref_state = ref['optimizer']['state']
    run_state = run['optimizer']['state']
    assert ref_state.keys() == run_state.keys() and ref_state
    for index, moments in ref_state.items():
        for name, value in moments.items():
            assert torch.equal(value, run_state[index][name]), (index, name)
    assert torch.equal(ref['rng_states']['torch'],
                       run['rng_states']['torch'])

    ref_log, run_log = _scalars(ref_dir), _scalars(run_dir)
    # the losses of the resumed epoch (iterations 7-12) are identical
    ref_losses = [e['loss'] for e in ref_log if 'loss' in e
                  and e['step'] > 6]
    run_losses = [e['loss'] for e in run_log if 'loss' in e]
    assert len(run_losses) == 6 and run_losses == ref_losses
    metrics = [{k: v for k, v in e.items() if k.startswith('tpr/')}
               for log in (ref_log, run_log) for e in log[-1:]]
    assert metrics[0] and metrics[0] == metrics[1]
