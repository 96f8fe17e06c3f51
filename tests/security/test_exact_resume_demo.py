"""Item 12: exact resume on the demo config itself. A run of
``configs/demo/clip_tiny_synth.py`` (its loaders and workers, hooks and
runner; only the data and the epochs shrunk with ``--cfg-options``) is
SIGKILLed at three moments:

(a) right after the checkpoint of epoch 2 is written,
(b) during the validation of epoch 2,
(c) inside the atomic write of the re-saved best checkpoint (epoch 2
    beats epoch 1), with half of its bytes in the temp file,

then resumed with ``tools/train.py --resume`` to the end. The final
checkpoint's tensors, the best checkpoint's name and tensors and every
epoch's validation metrics are bit-identical to an uninterrupted run's,
and no temp file of an interrupted save is left in the work dir.
"""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import threading

import pytest
import torch

from mmtpr.datasets import prepare_synth_pedes
from mmtpr.utils.checkpoint import load_checkpoint_file

from .hostile import HERE, ROOT, tool_env

DEMO = osp.join(ROOT, 'configs', 'demo', 'clip_tiny_synth.py')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
KILL = osp.join(HERE, 'kill_train.py')
EPOCHS = 3
# 24/8/8 persons with 2 images each: 2 training iterations per epoch, one
# validation batch. Data seed 2: the val R1 of the uninterrupted run rises
# from 6.25 at epoch 1 to 21.88 at epoch 2 (then 15.62), so its best
# checkpoint is re-saved at epoch 2 (the second best write).
DATA = dict(num_ids=(24, 8, 8), images_per_id=2, image_size=(128, 48),
            seed=2, caption_style='standard', camera='standard')
MOMENTS = {
    'after_checkpoint': ('after_checkpoint', 2),
    'during_val': ('during_val', 2),
    'during_best_save': ('during_best_save', 2),  # the 2nd best write
}


def cfg_options():
    options = [f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1']
    for split in ('train', 'val', 'test'):
        for key in ('num_ids', 'images_per_id', 'image_size', 'seed'):
            value = DATA[key]
            text = (f'({",".join(map(str, value))})'
                    if isinstance(value, tuple) else str(value))
            options.append(f'{split}_dataloader.dataset.{key}={text}')
    return options


def start(script_args, work_dir, log_name):
    log = open(f'{work_dir}.{log_name}.log', 'w')
    proc = subprocess.Popen([sys.executable, *script_args], stdout=log,
                            stderr=subprocess.STDOUT, env=tool_env(),
                            cwd=osp.dirname(work_dir))
    proc.log_file = log
    proc.log_path = log.name
    return proc


def finish(proc):
    try:
        code = proc.wait(timeout=900)
    finally:
        proc.log_file.close()
    with open(proc.log_path, errors='replace') as f:
        return code, f.read()


class DemoRuns:
    """The uninterrupted run and, for each moment, the killed run and its
    resumption: the four first runs in parallel, then the three
    resumptions. They are subprocesses, started in the background as soon
    as the session has selected this module's tests (see conftest's
    ``pytest_collection_finish``), so that they overlap the in-process
    tests; the ``runs`` fixture waits for them."""

    def __init__(self):
        self.thread = None
        self.procs = []
        self.result = self.error = None

    def start(self, base):
        if self.thread is not None:
            return
        base = str(base)
        data_root = osp.join(base, 'data')
        prepare_synth_pedes(data_root, generate=True, **DATA)
        self.thread = threading.Thread(target=self._guarded,
                                       args=(base, data_root), daemon=True)
        self.thread.start()

    def get(self, make_base):
        if self.thread is None:
            self.start(make_base())
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self):
        """Kill what still runs (an interrupted session)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()

    def _guarded(self, base, data_root):
        try:
            self.result = self._run(base, data_root)
        except BaseException as err:  # noqa: B036 (re-raised by get)
            self.error = err

    def _start(self, *args):
        self.procs.append(start(*args))
        return self.procs[-1]

    def _run(self, base, data_root):
        common = ['--data-root', data_root, '--cfg-options', *cfg_options()]
        dirs = {name: osp.join(base, name)
                for name in ['reference', *MOMENTS]}
        procs = {'reference': self._start(
            [TRAIN, DEMO, '--work-dir', dirs['reference'], *common],
            dirs['reference'], 'train')}
        for name, (moment, number) in MOMENTS.items():
            procs[name] = self._start(
                [KILL, moment, str(number), DEMO, '--work-dir', dirs[name],
                 *common], dirs[name], 'killed')
        result = {name: dict(dir=dirs[name]) for name in dirs}
        for name, proc in procs.items():
            code, log = finish(proc)
            result[name].update(code=code, log=log)
        resumed = {}
        for name in MOMENTS:
            work = dirs[name]
            result[name]['after_kill'] = sorted(os.listdir(work))
            if result[name]['code'] == -signal.SIGKILL:
                resumed[name] = self._start(
                    [TRAIN, DEMO, '--work-dir', work, '--resume', *common],
                    work, 'resumed')
        for name, proc in resumed.items():
            code, log = finish(proc)
            result[name].update(resumed_code=code, resumed_log=log)
        return result


BACKGROUND = DemoRuns()


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    return BACKGROUND.get(lambda: tmp_path_factory.mktemp('exact_resume'))


def val_metrics(work_dir):
    """epoch -> the val metrics logged for it, in every run of the work
    dir (an epoch validated twice appears twice)."""
    found = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'tpr/R1' in entry:
                    found.setdefault(entry['step'], []).append(
                        {k: v for k, v in entry.items()
                         if k.startswith('tpr/')})
    return found


def tensors(obj, prefix=''):
    """path -> tensor of every tensor inside ``obj``."""
    found = {}
    if isinstance(obj, torch.Tensor):
        found[prefix] = obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            found.update(tensors(value, f'{prefix}/{key}'))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found.update(tensors(value, f'{prefix}/{i}'))
    return found


def assert_same_tensors(ref_path, run_path):
    """The model, optimizer, scheduler and random states (those the
    checkpoint holds: a best checkpoint has no optimizer) are equal."""
    ref, run = load_checkpoint_file(ref_path), load_checkpoint_file(run_path)
    keys = [k for k in ('state_dict', 'optimizer', 'param_schedulers',
                        'rng_states') if k in ref]
    assert 'state_dict' in keys and 'rng_states' in keys
    assert keys == [k for k in ('state_dict', 'optimizer',
                                'param_schedulers', 'rng_states') if k in run]
    for key in keys:
        ref_t, run_t = tensors(ref[key]), tensors(run[key])
        assert ref_t.keys() == run_t.keys(), key
        assert ref_t or key == 'param_schedulers', key
        different = [p for p in ref_t if not torch.equal(ref_t[p], run_t[p])]
        assert not different, (key, different[:5])
    assert ref['meta']['epoch'] == run['meta']['epoch']
    assert ref['meta']['iter'] == run['meta']['iter']


def test_the_reference_run_re_saves_its_best(runs):
    ref = runs['reference']
    assert ref['code'] == 0, ref['log'][-3000:]
    assert ref['log'].count('The previous best checkpoint') >= 1
    metrics = val_metrics(ref['dir'])
    assert sorted(metrics) == list(range(1, EPOCHS + 1))
    # exactly one line per epoch
    assert all(len(v) == 1 for v in metrics.values())


@pytest.mark.parametrize('moment', list(MOMENTS))
def test_sigkill_then_resume_is_exact(runs, moment):
    ref, run = runs['reference'], runs[moment]
    assert run['code'] == -signal.SIGKILL, run['log'][-3000:]
    assert run.get('resumed_code') == 0, run.get('resumed_log',
                                                 '')[-3000:]
    assert 'resumed epoch: 2, iter: 4' in run['resumed_log']
    assert 'restored the random states' in run['resumed_log']
    if moment == 'during_best_save':
        # killed inside the atomic write: its temp file was left
        temps = [n for n in run['after_kill'] if n.endswith('.tmp')]
        assert temps and temps[0].startswith('.best_'), run['after_kill']
    else:
        assert not [n for n in run['after_kill'] if n.endswith('.tmp')]

    final = f'epoch_{EPOCHS}.pth'
    assert_same_tensors(osp.join(ref['dir'], final),
                        osp.join(run['dir'], final))
    ref_best = sorted(glob.glob(osp.join(ref['dir'], 'best_*.pth')))
    run_best = sorted(glob.glob(osp.join(run['dir'], 'best_*.pth')))
    assert [osp.basename(p) for p in run_best] == \
        [osp.basename(p) for p in ref_best]
    assert len(ref_best) == 1
    assert_same_tensors(ref_best[0], run_best[0])

    ref_metrics = {epoch: values[0] for epoch, values in
                   val_metrics(ref['dir']).items()}
    run_metrics = val_metrics(run['dir'])
    assert sorted(run_metrics) == sorted(ref_metrics)
    for epoch, values in run_metrics.items():
        for value in values:  # a re-validated epoch: both times
            assert value == ref_metrics[epoch], epoch

    leftovers = [p for p in glob.glob(osp.join(run['dir'], '**', '*'),
                                      recursive=True)
                 + glob.glob(osp.join(run['dir'], '**', '.*'),
                             recursive=True) if p.endswith('.tmp')]
    assert not leftovers
