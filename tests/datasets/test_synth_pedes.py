"""The SynthPedes dataset: generated on first use, read by the CUHK-PEDES
parser, never written over."""
import os

import pytest

from mmtpr.registry import DATASETS

SMALL = dict(num_ids=(6, 3, 2), images_per_id=2, image_size=(64, 32),
             seed=5)


def build(root, split, **kwargs):
    args = dict(SMALL, **kwargs)
    return DATASETS.build(dict(type='SynthPedes', data_root=str(root),
                               split=split, **args))


def test_generates_then_reuses_and_splits_are_disjoint(tmp_path):
    root = tmp_path / 'synth'
    train = build(root, 'train')
    assert len(train) == 6 * 2 * 2  # ids x images x captions
    stamp = os.path.getmtime(root / 'reid_raw.json')
    test = build(root, 'test')  # reused, not regenerated
    assert os.path.getmtime(root / 'reid_raw.json') == stamp
    assert test.metainfo['num_pids'] == 2 and len(test) == 4
    raw = [{train.get_data_info(i)['person_id'] for i in range(len(train))},
           {test.get_data_info(i)['person_id'] for i in range(len(test))}]
    assert not raw[0] & raw[1]


def test_refuses_a_folder_that_is_not_synth_pedes(tmp_path):
    root = tmp_path / 'mine'
    root.mkdir()
    (root / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='is not a SynthPedes dataset'):
        build(root, 'train')
    assert (root / 'notes.txt').read_text() == 'keep me'
    assert sorted(os.listdir(root)) == ['notes.txt']


def test_refuses_other_generation_settings(tmp_path):
    root = tmp_path / 'synth'
    build(root, 'train')
    with pytest.raises(FileExistsError, match=r"generated with .*'seed': 5"
                       r".*but .*'seed': 6"):
        build(root, 'train', seed=6)
