"""CUHK-PEDES parsing, item layouts, id remapping and clear errors."""
import os
import os.path as osp

import pytest
from conftest import cuhk_records, write_cuhk_like

from mmtpr.registry import DATASETS
from mmtpr.utils.errors import DataError, MissingFileError

TEST_PIPELINE = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=(32, 64), keep_ratio=False),
    dict(type='TokenizeCaption'),
    dict(type='PackTPRInputs'),
]


def build(root, split='train', **kwargs):
    return DATASETS.build(
        dict(type='CUHKPEDES', data_root=root, split=split, **kwargs))


def test_train_split_one_item_per_caption_with_explicit_remap(cuhk_root):
    dataset = build(cuhk_root)
    # train: ids 5 (2 images), 2 (1 image), 9 (2 images); 2 captions each
    assert len(dataset) == 10
    meta = dataset.metainfo
    assert (meta['num_pids'], meta['num_images'],
            meta['num_captions']) == (3, 5, 10)
    items = [dataset.get_data_info(i) for i in range(len(dataset))]
    # sorted unique raw ids -> 0..N-1: 2 -> 0, 5 -> 1, 9 -> 2
    remap = {item['person_id']: item['pid'] for item in items}
    assert remap == {2: 0, 5: 1, 9: 2}
    first = items[0]
    assert first['caption'] == 'person 5 image 0 caption a'
    assert first['img_path'] == osp.join(cuhk_root, 'imgs',
                                         'cam_a/0005_0.jpg')
    assert [it['image_id'] for it in items] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_test_split_one_item_per_image_with_all_captions(cuhk_root):
    dataset = build(cuhk_root, split='test', pipeline=TEST_PIPELINE)
    assert dataset.test_mode
    assert len(dataset) == 3
    info = dataset.get_data_info(0)
    assert info['captions'] == ['person 11 image 0 caption a',
                                'person 11 image 0 caption b']
    assert 'caption' not in info
    sample = dataset[2]
    assert tuple(sample['inputs'].shape) == (3, 64, 32)
    assert tuple(sample['texts'].shape) == (2, 77)
    assert sample['data_samples'].pid == 1
    assert sample['data_samples'].person_id == 12


def test_unknown_split_values_count_as_val(tmp_path):
    recs = cuhk_records()
    recs[-1]['split'] = 'validation'
    root = write_cuhk_like(tmp_path / 'c', recs)
    assert len(build(root, split='val')) == 1


def test_images_broken_after_build_fail_naming_the_file(cuhk_root):
    # (tests/datasets/test_bad_input.py: found when the dataset is built)
    dataset = build(cuhk_root, split='test', pipeline=TEST_PIPELINE)
    broken = dataset.get_data_info(0)['img_path']
    with open(broken, 'wb') as f:
        f.write(b'this is not a jpeg')
    with pytest.raises(DataError,
                       match=f"'{broken}' is not a readable image"):
        dataset[0]
    missing = dataset.get_data_info(1)['img_path']
    os.remove(missing)
    with pytest.raises(MissingFileError,
                       match=f"image '{missing}' does not exist"):
        dataset[1]
