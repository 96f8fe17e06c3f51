"""tools/train.py and tools/test.py with ``--launcher pytorch`` in 2 processes
(torchrun, gloo, CPU) on a tiny SynthPedes whose splits do not divide by 2."""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import tiny_cfg
from dist_helpers import HERE, ROOT, torchrun
from mmengine.registry import DATASETS

from mmtpr.registry import MODELS

# 36 train images x 2 captions = 72 pairs; 9 test images.
SYNTH = dict(num_ids=[12, 4, 3], images_per_id=3)
BATCH = 8


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """The config file (with the recording hook) and a checkpoint of the
    initial model; the data generated once, before any process starts."""
    base = tmp_path_factory.mktemp('dist_tools')
    cfg = tiny_cfg(base / 'unused', str(base / 'synth'), max_epochs=1)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(SYNTH)
    cfg.test_dataloader.batch_size = 2
    cfg.custom_imports = dict(imports=['record_hook'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='RecordRankHook')]
    config = str(base / 'tiny.py')
    cfg.dump(config)
    sizes = {split: len(DATASETS.build(cfg[f'{split}_dataloader'].dataset))
             for split in ('train', 'test')}
    assert sizes == dict(train=72, test=9)  # neither divides by 2 x batch

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = str(base / 'init.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    return base, config, ckpt, cfg


def read_records(work_dir, world_size):
    records = []
    for rank in range(world_size):
        with open(osp.join(str(work_dir), f'rank{rank}.json')) as f:
            records.append(json.load(f))
    return records


def test_distributed_evaluation_equals_one_process(setup):
    """9 test images on 2 ranks (5 + 4, the 5th of rank 1 a padding copy of
    image 0): exactly the metrics of one process."""
    base, config, ckpt, _ = setup
    single = base / 'test1'
    os.makedirs(single)
    env = dict(os.environ, HF_HUB_OFFLINE='1',
               PYTHONPATH=os.pathsep.join([ROOT, HERE,
                                           os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config, ckpt,
         '--work-dir', str(single)],
        capture_output=True, text=True, timeout=180, cwd=str(single),
        env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (one, ) = read_records(single, 1)

    double = base / 'test2'
    os.makedirs(double)
    out = torchrun('test.py', [config, ckpt, '--work-dir', str(double),
                               '--cfg-options',
                               'env_cfg.dist_cfg.backend=gloo'], double)
    two = read_records(double, 2)

    assert one['world_size'] == 1 and one['wrapper'] == 'TPRRetriever'
    assert [r['world_size'] for r in two] == [2, 2]
    assert two[0]['wrapper'] == 'MMDistributedDataParallel'
    assert set(one['metrics']) == {'tpr/R1', 'tpr/R5', 'tpr/R10',
                                   'tpr/mAP', 'tpr/mINP'}
    assert 0 < one['metrics']['tpr/mAP'] < 100
    # every rank returns the metrics that rank 0 computed
    assert two[0]['metrics'] == one['metrics']
    assert two[1]['metrics'] == one['metrics']
    logs = glob.glob(osp.join(str(double), '*', '*.json'))
    assert logs, 'no json log'
    logged = json.load(open(logs[0]))
    assert logged['tpr/R1'] == pytest.approx(one['metrics']['tpr/R1'],
                                             abs=1e-4)


def test_distributed_training_splits_the_epoch(setup):
    """One epoch on 2 ranks: each rank runs ceil(72 / 2 / 8) = 5 iterations
    on its own half of the 72 pairs, with the SDM loss over the global batch
    (the same logged value on both ranks)."""
    base, config, _, cfg = setup
    work = base / 'train2'
    os.makedirs(work)
    # the config names NCCL: setup_dist switches to gloo on this CPU
    out = torchrun('train.py', [config, '--work-dir', str(work)], work)
    assert "using the 'gloo' distributed backend" in out.stdout + out.stderr
    ranks = read_records(work, 2)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    pairs = {(d['img_path'], d['caption']) for d in infos}
    assert len(pairs) == 72

    per_rank = math.ceil(72 / 2 / BATCH)
    for r in ranks:
        assert r['wrapper'] == 'MMDistributedDataParallel'
        assert r['gathers'] is True
        assert r['iters'] == per_rank == 5
        assert len(r['seen']) == 36
    seen = [{tuple(s) for s in r['seen']} for r in ranks]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == pairs
    # the global-batch loss: identical on both ranks, every iteration
    assert len(ranks[0]['losses']) == per_rank
    assert ranks[0]['losses'] == pytest.approx(ranks[1]['losses'],
                                               abs=1e-5)
    assert osp.isfile(osp.join(str(work), 'epoch_1.pth'))
