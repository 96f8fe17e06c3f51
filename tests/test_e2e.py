"""End to end with MMEngine's Runner: train, validate, checkpoint, resume,
load_from and test on a tiny SynthPedes with a tiny CLIP."""
import glob
import os.path as osp
import re

import pytest
from conftest import build_runner, tiny_cfg

from mmtpr.utils.checkpoint import load_checkpoint_file

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp('e2e')
    data_root = str(base / 'synth')
    runner = build_runner(tiny_cfg(base / 'full', data_root))
    runner.train()
    return runner, data_root, base


def test_train_validates_checkpoints_and_selects_on_val(trained):
    runner, _, base = trained
    work = str(base / 'full')
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    best = glob.glob(osp.join(work, 'best_tpr_R1_epoch_*.pth'))
    assert len(best) == 1
    logs = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    text = open(logs[0]).read()
    assert 'loss_sdm' in text and 'tpr/R1' in text and 'tpr/mINP' in text


def test_load_from_reproduces_the_in_memory_test_metrics(trained):
    runner, data_root, base = trained
    in_memory = runner.test()
    cfg = tiny_cfg(base / 'test', data_root,
                   load_from=osp.join(str(base / 'full'), 'epoch_2.pth'))
    reloaded = build_runner(cfg).test()
    assert set(in_memory) == {'tpr/R1', 'tpr/R5', 'tpr/R10', 'tpr/mAP',
                              'tpr/mINP'}
    assert reloaded == in_memory


def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    runner, data_root, base = trained
    first = build_runner(
        tiny_cfg(tmp_path / 'resume', data_root, max_epochs=1))
    first.train()
    ckpt = osp.join(str(tmp_path / 'resume'), 'epoch_1.pth')
    saved = load_checkpoint_file(ckpt)
    assert saved['meta']['epoch'] == 1
    assert 'message_hub' in saved and 'optimizer' in saved

    second = build_runner(
        tiny_cfg(tmp_path / 'resume', data_root, max_epochs=2, resume=True))
    second.train()
    assert second.epoch == 2
    assert second.iter == runner.iter  # same number of iterations in all
    assert osp.isfile(osp.join(str(tmp_path / 'resume'), 'epoch_2.pth'))
    # the optimizer state was restored, not restarted
    state = second.optim_wrapper.optimizer.state_dict()['state']
    step = next(iter(state.values()))['step']
    assert int(step) == runner.iter


def test_tools_test_py_reproduces_the_metrics(trained, tmp_path):
    """`python tools/test.py CONFIG CHECKPOINT` prints the metrics of the
    in-memory model."""
    import subprocess
    import sys

    runner, data_root, base = trained
    cfg = tiny_cfg(base / 'cli', data_root)
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    ckpt = osp.join(str(base / 'full'), 'epoch_2.pth')
    expected = build_runner(tiny_cfg(base / 'cli2', data_root,
                                        load_from=ckpt)).test()
    out = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config, ckpt,
         '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    printed = {k: float(v) for k, v in re.findall(r'(tpr/\w+): ([\d.]+)',
                                                  last)}
    assert printed == {k: pytest.approx(v, abs=0.006)
                       for k, v in expected.items()}


def test_tools_train_py_trains_and_resumes(trained, tmp_path):
    """`tools/train.py` with --work-dir, --cfg-options and --resume."""
    import subprocess
    import sys

    _, data_root, base = trained
    config = str(tmp_path / 'tiny.py')
    tiny_cfg(base / 'unused', data_root).dump(config)
    work = str(tmp_path / 'work')

    def train(*args):
        out = subprocess.run(
            [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
             '--work-dir', work, *args],
            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    train('--cfg-options', 'train_cfg.max_epochs=1')
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    out = train('--resume')
    assert 'resumed epoch: 1' in out.stdout + out.stderr
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
