"""Tests of the synthetic CUHK-PEDES-format dataset generator."""
import json
import os
import re

import pytest
from PIL import Image

import mmtpr.datasets.synth.generator as sg
from mmtpr.datasets.synth import (
    SYNTH_ATTR_FILE,
    SYNTH_FORMAT_VERSION,
    SYNTH_META_FILE,
    generate_synth_pedes,
    read_synth_meta,
    synth_meta_matches,
    tokenize,
)

ARGS = dict(num_ids=(8, 3, 3), images_per_id=2, captions_per_image=2,
            image_size=(64, 32), seed=3, show_progress=False)
RECORD_KEYS = {'split', 'captions', 'file_path', 'processed_tokens', 'id'}

# Words a caption may use for each attribute value, written independently of
# the generator's vocabulary so that a renamed synonym is noticed.
GENDER_WORDS = {
    'man': {'man', 'guy', 'gentleman', 'he', 'his'},
    'woman': {'woman', 'lady', 'girl', 'she', 'her'},
}
# Head nouns; a colour word must precede one of them (modifiers allowed).
UPPER_WORDS = {
    't-shirt': {'t-shirt', 'tee'},
    'shirt': {'shirt'},
    'jacket': {'jacket'},
    'coat': {'coat', 'overcoat'},
    'sweater': {'sweater', 'jumper', 'pullover'},
    'hoodie': {'hoodie', 'sweatshirt', 'top'},
}
LOWER_WORDS = {
    'trousers': {'trousers', 'pants', 'slacks'},
    'jeans': {'jeans'},
    'shorts': {'shorts'},
    'skirt': {'skirt'},
}
BAG_WORDS = {
    'backpack': {'backpack', 'rucksack'},
    'handbag': {'handbag', 'purse'},
    'shoulder bag': {'bag'},
}
ALL_BAG_NOUNS = {'backpack', 'rucksack', 'handbag', 'purse', 'shoulder',
                 'messenger', 'crossbody'}
HAT_WORDS = {'cap': {'cap'}, 'hat': {'hat'}}


def _load(root):
    with open(os.path.join(root, 'reid_raw.json'), encoding='utf-8') as f:
        records = json.load(f)
    with open(os.path.join(root, SYNTH_ATTR_FILE), encoding='utf-8') as f:
        attrs = json.load(f)
    return records, attrs


def _colored(tokens, color, words):
    """Whether ``color`` qualifies one of ``words`` in ``tokens``.

    Accepts "<color> [modifier] <word>" and "<word> in <color>".
    """
    for i, tok in enumerate(tokens):
        if tok == color and any(t in words for t in tokens[i + 1:i + 3]):
            return True
        if tok in words and tokens[i + 1:i + 3] == ['in', color]:
            return True
    return False


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth') / 'pedes')
    stats = generate_synth_pedes(root, **ARGS)
    records, attrs = _load(root)
    return root, stats, records, attrs


def test_record_schema_and_images(dataset):
    root, _, records, _ = dataset
    height, width = ARGS['image_size']
    assert isinstance(records, list) and records
    for rec in records:
        assert set(rec) == RECORD_KEYS
        assert rec['split'] in ('train', 'val', 'test')
        assert isinstance(rec['id'], int) and rec['id'] >= 1
        path = rec['file_path']
        assert isinstance(path, str)
        assert not os.path.isabs(path) and '..' not in path.split('/')
        assert re.fullmatch(rf"{rec['split']}/\d{{4}}_\d{{2}}\.jpg", path)
        full = os.path.join(root, 'imgs', path)
        assert os.path.isfile(full)
        with Image.open(full) as img:
            assert img.format == 'JPEG'
            assert img.mode == 'RGB'
            assert img.size == (width, height)
        caps = rec['captions']
        assert isinstance(caps, list)
        assert len(caps) == ARGS['captions_per_image']
        assert rec['processed_tokens'] == [tokenize(c) for c in caps]
        for cap, tokens in zip(caps, rec['processed_tokens']):
            assert isinstance(cap, str) and cap.endswith('.')
            assert cap[0].isupper()
            assert 15 <= len(tokens) <= 45, cap
            assert all(t == t.lower() and re.fullmatch(r"[a-z0-9'-]+", t)
                       for t in tokens)
    # One record per image file, no stray files.
    on_disk = {
        os.path.relpath(os.path.join(d, f), os.path.join(root, 'imgs'))
        for d, _, files in os.walk(os.path.join(root, 'imgs'))
        for f in files
    }
    assert on_disk == {r['file_path'] for r in records}


def test_split_sizes_match_args_and_stats(dataset):
    root, stats, records, _ = dataset
    ipi, cpi = ARGS['images_per_id'], ARGS['captions_per_image']
    assert set(stats) == {'train', 'val', 'test'}
    for split, n_ids in zip(('train', 'val', 'test'), ARGS['num_ids']):
        recs = [r for r in records if r['split'] == split]
        expected = {'ids': n_ids, 'images': n_ids * ipi,
                    'captions': n_ids * ipi * cpi}
        assert stats[split] == expected
        assert len({r['id'] for r in recs}) == n_ids
        assert len(recs) == n_ids * ipi
        assert sum(len(r['captions']) for r in recs) == n_ids * ipi * cpi
    meta = read_synth_meta(root)
    assert meta['format_version'] == SYNTH_FORMAT_VERSION
    assert meta['num_ids'] == list(ARGS['num_ids'])
    assert meta['images_per_id'] == ipi
    assert meta['captions_per_image'] == cpi
    assert meta['image_size'] == list(ARGS['image_size'])
    assert meta['seed'] == ARGS['seed']
    assert meta['caption_style'] == 'standard'
    assert meta['camera'] == dict(scale=1.0, color_cast=[0, 0, 0], blur=0.0,
                                  back_view_prob=0.4)
    assert meta['stats'] == stats
    with open(os.path.join(root, SYNTH_META_FILE)) as f:
        assert json.load(f) == meta


def test_meta_matches(dataset):
    root = dataset[0]
    args = {k: v for k, v in ARGS.items() if k != 'show_progress'}
    assert synth_meta_matches(root, **args)
    assert synth_meta_matches(root, **{**args, 'num_ids': [8, 3, 3]})
    assert not synth_meta_matches(root, **{**args, 'seed': 4})
    assert not synth_meta_matches(root, **{**args, 'image_size': (64, 48)})
    assert synth_meta_matches(root, **args, caption_style='standard',
                              camera=dict(blur=0))
    assert not synth_meta_matches(root, **args, caption_style='terse')
    assert not synth_meta_matches(root, **args, camera='cctv')
    assert not synth_meta_matches(root, **args,
                                  camera=dict(back_view_prob=0.5))
    assert not synth_meta_matches(os.path.join(root, 'imgs'), **args)
    assert read_synth_meta(os.path.join(root, 'imgs')) is None


def test_identities_disjoint_and_numbered(dataset):
    _, _, records, attrs = dataset
    ids = {s: {r['id'] for r in records if r['split'] == s}
           for s in ('train', 'val', 'test')}
    assert not ids['train'] & ids['val']
    assert not ids['train'] & ids['test']
    assert not ids['val'] & ids['test']
    total = sum(ARGS['num_ids'])
    assert ids['train'] | ids['val'] | ids['test'] == set(range(1, total + 1))
    for r in records:
        assert attrs[str(r['id'])]['split'] == r['split']
    # Every identity is a different combination of attributes.
    combos = {tuple(sorted((k, str(v)) for k, v in a.items() if k != 'split'))
              for a in attrs.values()}
    assert len(combos) == total


def test_captions_name_the_attributes(dataset):
    _, _, records, attrs = dataset
    for rec in records:
        a = attrs[str(rec['id'])]
        other = 'woman' if a['gender'] == 'man' else 'man'
        for tokens in rec['processed_tokens']:
            msg = f'{a} / {" ".join(tokens)}'
            assert GENDER_WORDS[a['gender']] & set(tokens), msg
            assert not GENDER_WORDS[other] & set(tokens), msg
            assert 'hair' in tokens, msg
            assert a['hair_length'] in tokens, msg
            assert a['hair_color'] in tokens, msg
            assert _colored(tokens, a['upper_color'],
                            UPPER_WORDS[a['upper']]), msg
            assert _colored(tokens, a['lower_color'],
                            LOWER_WORDS[a['lower']]), msg
            assert _colored(tokens, a['shoes_color'],
                            {'shoes', 'sneakers'}), msg
            if a['bag'] == 'none':
                assert a['bag_color'] is None
                assert not ALL_BAG_NOUNS & set(tokens), msg
            else:
                assert _colored(tokens, a['bag_color'],
                                BAG_WORDS[a['bag']]), msg
            if a['hat'] == 'none':
                assert a['hat_color'] is None
                assert not {'cap', 'hat'} & set(tokens), msg
            else:
                assert _colored(tokens, a['hat_color'],
                                HAT_WORDS[a['hat']]), msg


def test_captions_of_an_image_differ(tmp_path):
    root = str(tmp_path / 'many_caps')
    generate_synth_pedes(root, num_ids=(10, 0, 0), images_per_id=2,
                         captions_per_image=4, image_size=(32, 16),
                         show_progress=False)
    records, _ = _load(root)
    assert {r['split'] for r in records} == {'train'}
    for rec in records:
        assert len(rec['captions']) == 4
        assert len(set(rec['captions'])) == 4
        # Different templates: the sentence openings differ too.
        assert len({' '.join(t[:2]) for t in rec['processed_tokens']}) > 1


def test_images_of_an_identity_vary(dataset):
    root, _, records, _ = dataset
    by_id = {}
    for r in records:
        by_id.setdefault(r['id'], []).append(r['file_path'])
    for paths in by_id.values():
        blobs = set()
        for p in paths:
            with open(os.path.join(root, 'imgs', p), 'rb') as f:
                blobs.add(f.read())
        assert len(blobs) == len(paths)


def _files(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            with open(path, 'rb') as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def test_deterministic_for_a_seed(dataset, tmp_path):
    root = dataset[0]
    again = str(tmp_path / 'again')
    generate_synth_pedes(again, **ARGS)
    assert _files(again) == _files(root)

    other = str(tmp_path / 'other')
    generate_synth_pedes(other, **{**ARGS, 'seed': ARGS['seed'] + 1})
    with open(os.path.join(root, 'reid_raw.json')) as f1, open(
            os.path.join(other, 'reid_raw.json')) as f2:
        assert f1.read() != f2.read()
    first, second = _files(root), _files(other)
    assert first.keys() == second.keys()
    images = [k for k in first if k.endswith('.jpg')]
    assert all(first[k] != second[k] for k in images)


def test_refuses_non_empty_out_dir(tmp_path):
    out = tmp_path / 'taken'
    out.mkdir()
    (out / 'keep.txt').write_text('precious')
    with pytest.raises(FileExistsError, match='taken'):
        generate_synth_pedes(str(out), **ARGS)
    assert os.listdir(out) == ['keep.txt']
    assert (out / 'keep.txt').read_text() == 'precious'
    # No temporary folder is left behind.
    assert os.listdir(tmp_path) == ['taken']

    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    with pytest.raises(FileExistsError, match='a_file'):
        generate_synth_pedes(str(a_file), **ARGS)
    assert a_file.read_text() == 'x'


def test_empty_out_dir_and_missing_parents(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    generate_synth_pedes(str(empty), **ARGS)
    assert (empty / 'reid_raw.json').is_file()

    nested = tmp_path / 'a' / 'b' / 'c'
    stats = generate_synth_pedes(str(nested), **ARGS)
    assert stats['train']['ids'] == ARGS['num_ids'][0]
    assert (nested / SYNTH_META_FILE).is_file()
    assert sorted(os.listdir(tmp_path / 'a' / 'b')) == ['c']


def test_out_dir_appearing_meanwhile(tmp_path, monkeypatch):
    out = tmp_path / 'raced'
    original = sg._generate_into

    def generate_then_race(root, *args, **kwargs):
        stats = original(root, *args, **kwargs)
        out.mkdir()
        (out / 'other.txt').write_text('theirs')
        return stats

    monkeypatch.setattr(sg, '_generate_into', generate_then_race)
    with pytest.raises(FileExistsError, match='raced'):
        generate_synth_pedes(str(out), **ARGS)
    assert os.listdir(out) == ['other.txt']
    assert os.listdir(tmp_path) == ['raced']


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_ids=(0, 1, 1)), 'train > 0'),
    (dict(num_ids=(2, 1)), 'num_ids'),
    (dict(num_ids=(2, -1, 1)), 'num_ids'),
    (dict(num_ids=(2.0, 1, 1)), 'num_ids'),
    (dict(num_ids=5), 'num_ids'),
    (dict(images_per_id=0), 'images_per_id'),
    (dict(images_per_id=True), 'images_per_id'),
    (dict(captions_per_image=0), 'captions_per_image'),
    (dict(image_size=(31, 16)), r'image_size.*\(32, 16\)'),
    (dict(image_size=(32, 15)), 'image_size'),
    (dict(image_size=(64,)), 'image_size'),
    (dict(seed=-1), 'seed'),
    (dict(caption_style='poetic'), 'caption_style must be one of'),
    (dict(caption_style=None), 'caption_style'),
    (dict(camera='webcam'), "camera must be one of.*'streetlight'"),
    (dict(camera=0.5), 'camera must be a preset name or a dict'),
    (dict(camera=dict(zoom=2)), r"unknown camera factors \['zoom'\]"),
    (dict(camera=dict(scale=0)), r'camera scale must be a number in \(0'),
    (dict(camera=dict(scale=1.5)), 'camera scale'),
    (dict(camera=dict(blur=-1)), 'camera blur must be a finite number'),
    (dict(camera=dict(blur=float('inf'))), 'camera blur'),
    (dict(camera=dict(back_view_prob=1.1)), 'camera back_view_prob'),
    (dict(camera=dict(back_view_prob=True)), 'camera back_view_prob'),
    (dict(camera=dict(color_cast=(1, 2))), 'camera color_cast must be 3'),
    (dict(camera=dict(color_cast=(0, 0, 300))), 'camera color_cast'),
    (dict(camera=dict(color_cast=(0, 0, 1.5))), 'camera color_cast'),
])
def test_bad_arguments(tmp_path, kwargs, match):
    out = tmp_path / 'never'
    with pytest.raises(ValueError, match=match):
        generate_synth_pedes(str(out), **{**ARGS, **kwargs})
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_progress_bar_and_minimum_size(tmp_path, capsys):
    root = str(tmp_path / 'tiny')
    stats = generate_synth_pedes(root, num_ids=(2, 1, 0), images_per_id=1,
                                 captions_per_image=1, image_size=(32, 16),
                                 show_progress=True)
    assert stats['test'] == {'ids': 0, 'images': 0, 'captions': 0}
    out = capsys.readouterr().out
    assert 'synth-pedes: writing 3 images\n' in out
    assert '3/3' in out  # MMEngine's progress bar, completed
    records, _ = _load(root)
    assert len(records) == 3
    with Image.open(os.path.join(root, 'imgs', records[0]['file_path'])) as im:
        assert im.size == (16, 32)


def test_tokenize():
    assert tokenize('A red T-shirt, blue jeans; he\'s 2 m tall.') == [
        'a', 'red', 't-shirt', 'blue', 'jeans', "he's", '2', 'm', 'tall'
    ]
