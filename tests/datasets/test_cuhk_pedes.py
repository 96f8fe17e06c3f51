"""CUHK-PEDES parsing, item layouts, id remapping and clear errors."""
import json
import os
import os.path as osp

import pytest
from conftest import cuhk_records, write_cuhk_like

from mmtpr.datasets import AnnotationError
from mmtpr.registry import DATASETS

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


def test_missing_annotation_file_says_what_layout_is_expected(tmp_path):
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError,
                       match=r"reid_raw\.json' not found.*'file_path'"):
        build(str(tmp_path / 'empty'))


@pytest.mark.parametrize('mutate, message', [
    (lambda r: r.pop('captions'), r"record 2: missing key 'captions'"),
    (lambda r: r.pop('id'), r"record 2: missing key 'id'"),
    (lambda r: r.pop('file_path'), r"record 2: missing key 'file_path'"),
    (lambda r: r.pop('split'), r"record 2: missing key 'split'"),
    (lambda r: r.update(captions=[]), r"record 2: 'captions' must be a "
     'non-empty list'),
    (lambda r: r.update(captions=['ok', '  ']), r"record 2: 'captions'\[1\] "
     'must be a non-empty string'),
    (lambda r: r.update(id='seven'), r"record 2: 'id' must be an integer, "
     "got 'seven'"),
])
def test_malformed_record_names_file_record_and_key(tmp_path, mutate,
                                                    message):
    recs = cuhk_records()
    mutate(recs[2])
    root = write_cuhk_like(tmp_path / 'c', recs, make_images=False)
    with pytest.raises(AnnotationError, match=message) as info:
        build(root)
    assert 'reid_raw.json' in str(info.value)


def test_not_json_and_not_a_list(tmp_path):
    root = tmp_path / 'c'
    os.makedirs(root)
    (root / 'reid_raw.json').write_text('{"split": ')
    with pytest.raises(AnnotationError, match='not valid JSON'):
        build(str(root))
    (root / 'reid_raw.json').write_text(json.dumps({'a': 1}))
    with pytest.raises(AnnotationError, match='expected a JSON list'):
        build(str(root))


def test_empty_split_is_an_error(tmp_path):
    recs = [r for r in cuhk_records() if r['split'] == 'train']
    root = write_cuhk_like(tmp_path / 'c', recs, make_images=False)
    with pytest.raises(AnnotationError,
                       match=r"split 'test' has no records.*\['train'\]"):
        build(root, split='test')
    with pytest.raises(ValueError, match='split must be one of'):
        build(root, split='training')


def test_unreadable_and_missing_images_name_the_file(cuhk_root):
    dataset = build(cuhk_root, split='test', pipeline=TEST_PIPELINE)
    broken = dataset.get_data_info(0)['img_path']
    with open(broken, 'wb') as f:
        f.write(b'this is not a jpeg')
    with pytest.raises(ValueError, match=f"cannot read image '{broken}'"):
        dataset[0]
    missing = dataset.get_data_info(1)['img_path']
    os.remove(missing)
    with pytest.raises(FileNotFoundError,
                       match=f"image file '{missing}' does not exist"):
        dataset[1]
