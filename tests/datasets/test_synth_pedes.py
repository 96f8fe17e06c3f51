"""The SynthPedes dataset: generated where asked, read by the CUHK-PEDES
parser, never written over."""
import json
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
    train = build(root, 'train', generate=True)
    assert len(train) == 6 * 2 * 2  # ids x images x captions
    stamp = os.path.getmtime(root / 'reid_raw.json')
    test = build(root, 'test')  # reused, not regenerated: no generate
    assert os.path.getmtime(root / 'reid_raw.json') == stamp
    assert test.metainfo['num_pids'] == 2 and len(test) == 4
    raw = [{train.get_data_info(i)['person_id'] for i in range(len(train))},
           {test.get_data_info(i)['person_id'] for i in range(len(test))}]
    assert not raw[0] & raw[1]


def test_missing_root_needs_generate(tmp_path):
    root = tmp_path / 'mistyped'
    with pytest.raises(FileNotFoundError,
                       match=f"'{root}' does not exist.*generate=True"):
        build(root, 'train')
    assert os.listdir(tmp_path) == []
    # An empty folder holds no dataset either, and stays as it is.
    root.mkdir()
    with pytest.raises(FileNotFoundError, match='generate=True'):
        build(root, 'test', generate=False)
    assert os.listdir(root) == []
    build(root, 'test', generate=True)
    assert (root / 'reid_raw.json').is_file()


@pytest.mark.parametrize('generate', [False, True])
def test_refuses_a_folder_that_is_not_synth_pedes(tmp_path, generate):
    root = tmp_path / 'mine'
    root.mkdir()
    (root / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='is not a SynthPedes dataset'):
        build(root, 'train', generate=generate)
    assert (root / 'notes.txt').read_text() == 'keep me'
    assert sorted(os.listdir(root)) == ['notes.txt']


@pytest.mark.parametrize('other, match', [
    (dict(seed=6), r"generated with .*'seed': 5.*but .*'seed': 6"),
    (dict(caption_style='terse'),
     r"generated with \{'caption_style': 'standard'\}, but "
     r"\{'caption_style': 'terse'\} was asked for"),
    (dict(camera='cctv'),
     r"generated with \{'camera': \{'scale': 1.0.*\}\}, but "
     r"\{'camera': \{'scale': 0.5, 'color_cast': \[-14, 6, 22\]"),
    (dict(camera=dict(blur=1.0)), r"but \{'camera': .*'blur': 1.0"),
])
def test_refuses_other_generation_settings(tmp_path, other, match):
    root = tmp_path / 'synth'
    build(root, 'train', generate=True)
    stamp = os.path.getmtime(root / 'reid_raw.json')
    for generate in (False, True):
        with pytest.raises(FileExistsError, match=match):
            build(root, 'train', generate=generate, **other)
    assert os.path.getmtime(root / 'reid_raw.json') == stamp


def test_style_and_camera_reach_the_generator(tmp_path):
    root = tmp_path / 'cctv'
    train = build(root, 'train', caption_style='terse', camera='cctv',
                  generate=True)
    with open(root / 'synth_meta.json') as f:
        meta = json.load(f)
    assert meta['caption_style'] == 'terse'
    assert meta['camera'] == dict(scale=0.5, color_cast=[-14, 6, 22],
                                  blur=0.8, back_view_prob=0.6)
    captions = [train.get_data_info(i)['caption'] for i in range(len(train))]
    assert max(len(c.split()) for c in captions) <= 24
    # The preset and its factors are the same camera.
    same = build(root, 'val', caption_style='terse',
                 camera=dict(scale=0.5, color_cast=(-14, 6, 22), blur=0.8,
                             back_view_prob=0.6))
    assert same.metainfo['num_pids'] == 3


def test_folder_from_before_styles_and_cameras_is_reused(tmp_path):
    """synth_meta.json without caption_style and camera: the defaults,
    whose output is unchanged."""
    root = tmp_path / 'old'
    build(root, 'train', generate=True)
    meta_path = root / 'synth_meta.json'
    meta = json.loads(meta_path.read_text())
    del meta['caption_style'], meta['camera']
    meta_path.write_text(json.dumps(meta))
    assert len(build(root, 'test')) == 4
    with pytest.raises(FileExistsError, match="'caption_style': 'standard'"):
        build(root, 'test', caption_style='detailed')


def test_bad_style_or_camera(tmp_path):
    with pytest.raises(ValueError, match='caption_style must be one of'):
        build(tmp_path / 'x', 'train', caption_style='poetic',
              generate=True)
    with pytest.raises(ValueError, match="camera must be one of.*'cctv'"):
        build(tmp_path / 'x', 'train', camera='webcam', generate=True)
    with pytest.raises(ValueError, match=r"unknown camera factors \['zoom'"):
        build(tmp_path / 'x', 'train', camera=dict(zoom=2), generate=True)
    assert os.listdir(tmp_path) == []
