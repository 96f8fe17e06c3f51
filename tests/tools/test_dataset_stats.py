"""tools/dataset_stats.py: sizes per split, compared with the published
ones."""
import importlib.util
import os.path as osp

import pytest
from conftest import cuhk_records, write_cuhk_like

from mmtpr.datasets import CUHKPEDES, ICFGPEDES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'dataset_stats', osp.join(REPO, 'tools', 'dataset_stats.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def root_options(root, loaders=('train', 'val', 'test')):
    return ['--cfg-options'] + [
        f'{loader}_dataloader.dataset.data_root={root}' for loader in loaders
    ]


def test_prints_sizes_and_warns_when_they_differ(tmp_path, capsys):
    root = write_cuhk_like(tmp_path / 'CUHK-PEDES', cuhk_records())
    config = osp.join(REPO, 'configs', 'up_person', 'clip_b16_cuhk.py')
    status = load_tool().main([config] + root_options(root))
    out = capsys.readouterr().out
    lines = {line.split()[1]: line.split() for line in out.splitlines()
             if line.startswith('CUHKPEDES')}
    # split: ids, images, captions, skipped (cuhk_records: 2 captions each)
    assert lines['train'][2:6] == ['3', '5', '10', '0']
    assert lines['val'][2:6] == ['1', '1', '2', '0']
    assert lines['test'][2:6] == ['2', '3', '6', '0']
    assert lines['test'][6] == '1,000/3,074/6,156'
    assert status == 1  # they differ from the published sizes


def test_matching_sizes_exit_zero(tmp_path, monkeypatch, capsys):
    root = write_cuhk_like(tmp_path / 'CUHK-PEDES', cuhk_records())
    monkeypatch.setattr(CUHKPEDES, 'PUBLISHED_SIZES', dict(
        train=(3, 5, 10), val=(1, 1, 2), test=(2, 3, 6)))
    config = osp.join(REPO, 'configs', 'dm_adapter', 'clip_b16_cuhk.py')
    assert load_tool().main([config] + root_options(root)) == 0


def test_compare_names_what_differs():
    tool = load_tool()
    dataset = object.__new__(ICFGPEDES)
    message = tool.compare(dataset, 'test', dict(
        num_pids=1000, num_images=19000, num_captions=19848))
    assert message == (
        'ICFGPEDES test: images 19000 (published 19848). Check data_root '
        'and the annotation file (a subset? another release?)')
    assert tool.compare(dataset, 'test', dict(
        num_pids=1000, num_images=19848, num_captions=19848)) is None
    assert tool.compare(dataset, 'val', dict(
        num_pids=1, num_images=1, num_captions=1)) is None


def test_icfg_config_has_no_val_split_and_bad_records_are_counted(
        tmp_path, capsys):
    recs = [r for r in cuhk_records() if r['split'] != 'val']
    root = write_cuhk_like(tmp_path / 'ICFG-PEDES', recs,
                           ann_name='ICFG_PEDES.json')
    recs_path = osp.join(root, 'imgs', recs[0]['file_path'])
    with open(recs_path, 'wb') as f:
        f.write(b'broken')
    config = osp.join(REPO, 'configs', 'up_person', 'clip_b16_icfg.py')
    options = root_options(root, ('train', 'test'))
    with pytest.raises(ValueError, match='record 0: image'):
        load_tool().main([config] + options)
    load_tool().main([config, '--skip-bad-records'] + options)
    out = capsys.readouterr().out
    assert 'val    no val_dataloader in the config' in out
    train = [line for line in out.splitlines()
             if line.startswith('ICFGPEDES  ') and ' train ' in line]
    assert train[0].split()[2:6] == ['3', '4', '8', '1']
