"""A newcomer's traps: work dirs that never collide, refusing to resume
another method's checkpoint, short errors, quiet optimizer logs."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import build_runner, tiny_cfg

from mmtpr.utils.config import default_work_dir
from mmtpr.utils.errors import CheckpointError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENV = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=ROOT)
CUHK = ('configs/baseline/clip_b16_cuhk.py',
        'configs/up_person/clip_b16_cuhk.py',
        'configs/dm_adapter/clip_b16_cuhk.py')


def test_configs_with_the_same_file_name_get_distinct_work_dirs():
    dirs = [default_work_dir(osp.join(ROOT, c)) for c in CUHK]
    assert dirs == [osp.join('work_dirs', 'baseline', 'clip_b16_cuhk'),
                    osp.join('work_dirs', 'up_person', 'clip_b16_cuhk'),
                    osp.join('work_dirs', 'dm_adapter', 'clip_b16_cuhk')]
    assert default_work_dir('/tmp/elsewhere/my_config.py') == osp.join(
        'work_dirs', 'my_config')
    # tools/train.py uses it
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import train
        cfg = train.build_cfg(train.parse_args([osp.join(ROOT, CUHK[1])]))
    finally:
        sys.path.pop(0)
    assert cfg.work_dir == dirs[1]


def _write_config(tmp_path, name, petl):
    cfg = tiny_cfg(tmp_path / 'work', str(tmp_path / 'synth'), max_epochs=1)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.generate = True
    cfg.model.backbone['freeze'] = True
    cfg.model.backbone.petl = petl
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def test_resuming_another_methods_checkpoint_is_refused(tmp_path):
    from mmtpr.utils.config import load_config
    up = _write_config(tmp_path, 'up_person_like',
                       [dict(type='LNAdapter', reduction=8)])
    dm = _write_config(tmp_path, 'dm_adapter_like',
                       [dict(type='MixtureOfAdapters', num_experts=4)])
    build_runner(load_config(up)).train()
    ckpt = str(tmp_path / 'work' / 'epoch_1.pth')
    cfg = load_config(dm)
    cfg.resume, cfg.load_from = True, ckpt
    cfg.train_cfg.max_epochs = 2
    with pytest.raises(CheckpointError) as info:
        build_runner(cfg).train()
    message = str(info.value)
    assert f"cannot resume from '{ckpt}'" in message
    assert 'up_person_like.py' in message and 'dm_adapter_like.py' in message
    assert 'backbone.petl[0].type' in message


def test_a_missing_data_root_is_one_short_block(tmp_path):
    missing = str(tmp_path / 'no' / 'CUHK-PEDES')
    out = subprocess.run(
        [sys.executable, 'tools/train.py', CUHK[1], '--data-root', missing,
         '--work-dir', str(tmp_path / 'w')],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert len(text.strip().splitlines()) < 15, text
    assert missing in text and 'data_root/reid_raw.json' in text
    assert 'Traceback' not in text and 'Config:' not in text
    assert not osp.exists(tmp_path / 'w')  # nothing was started


def test_a_mistyped_config_path_is_one_line():
    out = subprocess.run(
        [sys.executable, 'tools/test.py', 'configs/up_person/clip_b16_cuhc.py',
         'x.pth'], cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith('error: ')
    assert len(out.stderr.strip().splitlines()) <= 3


def test_optimizer_setup_is_one_summary_line(tmp_path):
    cfg = tiny_cfg(tmp_path / 'work', str(tmp_path / 'synth'), max_epochs=1)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.generate = True
    cfg.model.backbone['freeze'] = True
    cfg.model.backbone.petl = [dict(type='LNAdapter', reduction=8)]
    runner = build_runner(cfg)
    runner.train()
    log = open(runner.logger.log_file).read()
    assert 'is skipped since its requires_grad' not in log
    assert 'paramwise_options' not in log
    lines = [line for line in log.splitlines()
             if 'trainable parameters' in line and 'optimizer' in line]
    assert len(lines) == 1 and 'frozen' in lines[0] and 'lr=' in lines[0]
    # validation metrics as a small table
    assert 'direction       R1' in log
