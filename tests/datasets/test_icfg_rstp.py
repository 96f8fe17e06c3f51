"""ICFG-PEDES and RSTPReid parsing (methods.md 5)."""
import os

import pytest
from conftest import cuhk_records, write_cuhk_like

from mmtpr.datasets import AnnotationError
from mmtpr.registry import DATASETS


@pytest.mark.parametrize('ann_name', ['ICFG-PEDES.json', 'ICFG_PEDES.json'])
def test_icfg_accepts_both_file_names(tmp_path, ann_name):
    recs = [r for r in cuhk_records() if r['split'] != 'val']
    root = write_cuhk_like(tmp_path / 'ICFG-PEDES', recs, ann_name=ann_name)
    train = DATASETS.build(dict(type='ICFGPEDES', data_root=root))
    assert len(train) == 10
    assert train.ann_file.endswith(ann_name)
    test = DATASETS.build(dict(type='ICFGPEDES', data_root=root,
                               split='test'))
    assert test.metainfo['num_images'] == 3
    with pytest.raises(AnnotationError, match="split 'val' has no records"):
        DATASETS.build(dict(type='ICFGPEDES', data_root=root, split='val'))


def test_icfg_missing_file_names_both_spellings(tmp_path):
    os.makedirs(tmp_path / 'ICFG-PEDES')
    with pytest.raises(FileNotFoundError,
                       match='ICFG-PEDES.json or data_root/ICFG_PEDES.json'):
        DATASETS.build(dict(type='ICFGPEDES',
                            data_root=str(tmp_path / 'ICFG-PEDES')))


def test_rstpreid_reads_img_path(tmp_path):
    recs = []
    for rec in cuhk_records():
        rec = dict(rec)
        rec['img_path'] = rec.pop('file_path').replace('cam_a/', '')
        rec.pop('processed_tokens')
        recs.append(rec)
    root = write_cuhk_like(tmp_path / 'RSTPReid', recs,
                           ann_name='data_captions.json')
    for split, images in (('train', 5), ('val', 1), ('test', 3)):
        dataset = DATASETS.build(dict(type='RSTPReid', data_root=root,
                                      split=split))
        assert dataset.metainfo['num_images'] == images
    info = DATASETS.build(dict(type='RSTPReid', data_root=root,
                               split='test')).get_data_info(0)
    assert info['img_path'] == os.path.join(root, 'imgs', '0011_0.jpg')
    recs[0]['file_path'] = recs[0].pop('img_path')
    root = write_cuhk_like(tmp_path / 'bad', recs, make_images=False,
                           ann_name='data_captions.json')
    with pytest.raises(AnnotationError, match="record 0: missing key "
                       "'img_path'"):
        DATASETS.build(dict(type='RSTPReid', data_root=root))
