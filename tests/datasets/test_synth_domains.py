"""Domains of SynthPedes: caption styles (how annotators write) and
cameras (what the photos look like)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from mmtpr.datasets.synth import (
    CAMERA_PRESETS,
    CAPTION_STYLES,
    generate_synth_pedes,
    read_synth_meta,
    synth_meta_matches,
)

ARGS = dict(num_ids=(12, 4, 4), images_per_id=2, captions_per_image=2,
            image_size=(64, 32), seed=2, show_progress=False)
TINY = dict(ARGS, num_ids=(6, 2, 2))
NEW_STYLES = ('terse', 'detailed')
NEW_CAMERAS = ('cctv', 'streetlight')
WORD_RANGE = {'standard': (15, 45), 'terse': (8, 24), 'detailed': (28, 55)}

# Words that name each attribute value in any style, written independently
# of the generator's tables so that a lost or ambiguous word is noticed.
GENDER_WORDS = {
    'man': {'man', 'guy', 'gentleman', 'he', 'his', 'male'},
    'woman': {'woman', 'lady', 'girl', 'she', 'her', 'female'},
}
COLOR_WORDS = {
    'red': {'red', 'crimson', 'scarlet'},
    'blue': {'blue', 'cobalt'},
    'green': {'green', 'emerald'},
    'yellow': {'yellow', 'mustard'},
    'black': {'black'},
    'white': {'white', 'off-white'},
    'gray': {'gray', 'grey'},
    'purple': {'purple', 'violet'},
    'orange': {'orange', 'tangerine'},
    'pink': {'pink'},
    'brown': {'brown', 'chocolate'},
}
ALL_COLOR_WORDS = set().union(*COLOR_WORDS.values())
HAIR_COLOR_WORDS = {
    'black': {'black'},
    'brown': {'brown', 'chestnut'},
    'blond': {'blond', 'blonde', 'fair'},
    'gray': {'gray', 'grey', 'silver'},
}
UPPER_WORDS = {
    't-shirt': {'t-shirt', 'tee', 'tshirt'},
    'shirt': {'shirt'},
    'jacket': {'jacket', 'windbreaker'},
    'coat': {'coat', 'overcoat'},
    'sweater': {'sweater', 'jumper', 'pullover', 'knitwear'},
    'hoodie': {'hoodie', 'hoody', 'sweatshirt', 'top'},
}
LOWER_WORDS = {
    'trousers': {'trousers', 'pants', 'slacks', 'chinos'},
    'jeans': {'jeans', 'denims', 'denim'},
    'shorts': {'shorts'},
    'skirt': {'skirt', 'miniskirt'},
}
SHOE_WORDS = {'shoes', 'sneakers', 'trainers', 'footwear'}
BAG_WORDS = {
    'backpack': {'backpack', 'rucksack'},
    'handbag': {'handbag', 'purse', 'tote'},
    'shoulder bag': {'bag', 'satchel'},
}
ALL_BAG_NOUNS = {'backpack', 'rucksack', 'handbag', 'purse', 'tote',
                 'shoulder', 'messenger', 'crossbody', 'sling', 'satchel'}
HAT_WORDS = {'cap': {'cap', 'ballcap'}, 'hat': {'hat'}}
# Every 'detailed' caption names the view point with one of these.
BACK_VIEW = ('from behind', 'away from the camera', 'from the rear')
FRONT_VIEW = ('from the front', 'facing the camera', 'towards the camera',
              'head-on')
# Words of the new styles that the standard annotator never uses.
STYLE_ONLY_WORDS = {
    'terse': {'male', 'female', 'grey', 'tshirt', 'hoody', 'knitwear',
              'miniskirt', 'footwear', 'tote', 'satchel', 'ballcap'},
    'detailed': {'crimson', 'scarlet', 'cobalt', 'emerald', 'mustard',
                 'violet', 'tangerine', 'chocolate', 'chestnut', 'blonde',
                 'trainers', 'chinos', 'denims', 'windbreaker', 'pedestrian',
                 'photographed', 'grey'},
}


def _generate(root, **kwargs):
    generate_synth_pedes(str(root), **{**ARGS, **kwargs})
    with open(os.path.join(root, 'reid_raw.json')) as f:
        records = json.load(f)
    with open(os.path.join(root, 'synth_attributes.json')) as f:
        attrs = json.load(f)
    return records, attrs


def _files(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def _images(root, records):
    return [np.asarray(Image.open(os.path.join(root, 'imgs',
                                               r['file_path'])),
                       dtype=np.float64) for r in records]


def _high_freq(images):
    """Mean squared difference of neighbouring grey values."""
    energy = []
    for img in images:
        grey = img.mean(axis=2)
        energy.append(np.mean(np.diff(grey, axis=0)**2)
                      + np.mean(np.diff(grey, axis=1)**2))
    return float(np.mean(energy))


def _channel_means(images):
    return np.mean([img.reshape(-1, 3).mean(axis=0) for img in images],
                   axis=0)


@pytest.fixture(scope='module')
def styled(tmp_path_factory):
    """The same identities written by each annotator."""
    base = tmp_path_factory.mktemp('styles')
    return {style: _generate(base / style, caption_style=style)
            for style in CAPTION_STYLES}


def _qualifies(tokens, colors, words):
    """A colour word of ``colors`` qualifies one of ``words``: "<colour>
    [modifiers] <word>" or "<word> in [modifier] <colour>"."""
    for i, tok in enumerate(tokens):
        if tok in colors:
            for nxt in tokens[i + 1:i + 4]:
                if nxt in words:
                    return True
                if nxt in ALL_COLOR_WORDS:
                    break
        if (tok in words and tokens[i + 1:i + 2] == ['in']
                and colors & set(tokens[i + 2:i + 4])):
            return True
    return False


def _near_hair(tokens, words):
    return any(tok == 'hair' and words & set(tokens[max(0, i - 3):i + 5])
               for i, tok in enumerate(tokens))


def _check_caption(a, tokens):
    """Every visible attribute of identity ``a`` is named in ``tokens``."""
    msg = f'{a} / {" ".join(tokens)}'
    other = 'woman' if a['gender'] == 'man' else 'man'
    assert GENDER_WORDS[a['gender']] & set(tokens), msg
    assert not GENDER_WORDS[other] & set(tokens), msg
    assert _near_hair(tokens, {a['hair_length']}), msg
    assert _near_hair(tokens, HAIR_COLOR_WORDS[a['hair_color']]), msg
    color = COLOR_WORDS
    assert _qualifies(tokens, color[a['upper_color']],
                      UPPER_WORDS[a['upper']]), msg
    assert _qualifies(tokens, color[a['lower_color']],
                      LOWER_WORDS[a['lower']]), msg
    assert _qualifies(tokens, color[a['shoes_color']], SHOE_WORDS), msg
    if a['bag'] == 'none':
        assert not ALL_BAG_NOUNS & set(tokens), msg
    else:
        assert _qualifies(tokens, color[a['bag_color']],
                          BAG_WORDS[a['bag']]), msg
    if a['hat'] == 'none':
        assert not {'cap', 'hat'} & set(tokens), msg
    else:
        assert _qualifies(tokens, color[a['hat_color']],
                          HAT_WORDS[a['hat']]), msg


@pytest.mark.parametrize('style', sorted(CAPTION_STYLES))
def test_every_style_names_every_attribute(styled, style):
    records, attrs = styled[style]
    low, high = WORD_RANGE[style]
    for rec in records:
        assert len(set(rec['captions'])) == len(rec['captions'])
        for caption, tokens in zip(rec['captions'], rec['processed_tokens']):
            assert caption[0].isupper() and caption.endswith('.'), caption
            assert low <= len(tokens) <= high, caption
            _check_caption(attrs[str(rec['id'])], tokens)


def test_styles_differ_in_length_vocabulary_and_order(styled):
    tokens = {style: [t for rec in records for t in rec['processed_tokens']]
              for style, (records, _) in styled.items()}
    mean_len = {s: np.mean([len(t) for t in caps])
                for s, caps in tokens.items()}
    assert mean_len['terse'] < 0.7 * mean_len['standard']
    assert mean_len['detailed'] > 1.3 * mean_len['standard']
    standard_vocab = {t for caps in tokens['standard'] for t in caps}
    for style in NEW_STYLES:
        vocab = {t for caps in tokens[style] for t in caps}
        assert not STYLE_ONLY_WORDS[style] & standard_vocab
        assert len(STYLE_ONLY_WORDS[style] & vocab) >= 2, style
        # Other words overall, not only other lengths.
        assert len(vocab - standard_vocab) >= 0.2 * len(vocab), style

    def gender_position(caps):
        """Mean relative position of the first word naming the gender."""
        words = GENDER_WORDS['man'] | GENDER_WORDS['woman']
        return np.mean([next(i for i, t in enumerate(c) if t in words)
                        / (len(c) - 1) for c in caps])

    # standard names the gender first, the new styles late or last
    assert gender_position(tokens['standard']) < 0.25
    assert gender_position(tokens['terse']) > 0.35
    assert gender_position(tokens['detailed']) > 0.9


def test_same_identities_in_every_style(styled):
    attrs = [a for _, a in styled.values()]
    assert all(a == attrs[0] for a in attrs)


@pytest.mark.parametrize('kwargs', [
    *(dict(caption_style=s) for s in NEW_STYLES),
    *(dict(camera=c) for c in NEW_CAMERAS),
    dict(caption_style='terse', camera=dict(scale=0.3, color_cast=(5, 0, 0),
                                            blur=0.5, back_view_prob=0.9)),
], ids=str)
def test_deterministic_and_not_standard(tmp_path, kwargs):
    _generate(tmp_path / 'a', **{**TINY, **kwargs})
    _generate(tmp_path / 'b', **{**TINY, **kwargs})
    _generate(tmp_path / 'standard', **TINY)
    first = _files(tmp_path / 'a')
    assert first == _files(tmp_path / 'b')
    standard = _files(tmp_path / 'standard')
    assert first.keys() == standard.keys()
    changed = [k for k in first if first[k] != standard[k]]
    if 'camera' in kwargs:
        assert all(first[k] != standard[k] for k in first
                   if k.endswith('.jpg'))
    assert 'reid_raw.json' in changed and 'synth_meta.json' in changed
    assert 'synth_attributes.json' not in changed


def test_meta_records_style_and_camera(tmp_path):
    root = tmp_path / 'd'
    _generate(root, **{**TINY, 'caption_style': 'detailed',
                       'camera': dict(scale=0.5, blur=2)})
    meta = read_synth_meta(str(root))
    assert meta['caption_style'] == 'detailed'
    assert meta['camera'] == dict(scale=0.5, color_cast=[0, 0, 0], blur=2.0,
                                  back_view_prob=0.4)
    args = {k: v for k, v in TINY.items() if k != 'show_progress'}
    assert synth_meta_matches(str(root), **args, caption_style='detailed',
                              camera=dict(scale=0.5, blur=2.0))
    assert not synth_meta_matches(str(root), **args, camera=dict(scale=0.5))
    assert not synth_meta_matches(str(root), **args,
                                  camera=dict(scale=0.5, blur=2.0))


def test_blur_lowers_high_frequencies_only(tmp_path):
    """blur leaves the random stream alone: the same photos, blurred."""
    sharp, _ = _generate(tmp_path / 'sharp')
    _generate(tmp_path / 'blurred', camera=dict(blur=1.2))
    a = _images(tmp_path / 'sharp', sharp)
    b = _images(tmp_path / 'blurred', sharp)
    assert _high_freq(b) < 0.5 * _high_freq(a)
    assert np.allclose(_channel_means(a), _channel_means(b), atol=2)


def test_color_cast_shifts_the_channel_means(tmp_path):
    plain, _ = _generate(tmp_path / 'plain')
    _generate(tmp_path / 'cast', camera=dict(color_cast=(30, 0, -30)))
    shift = (_channel_means(_images(tmp_path / 'cast', plain))
             - _channel_means(_images(tmp_path / 'plain', plain)))
    assert 20 < shift[0] <= 30
    assert abs(shift[1]) < 2
    assert -30 <= shift[2] < -20


def test_scale_renders_smaller_and_keeps_the_size(tmp_path):
    full, _ = _generate(tmp_path / 'full')
    small, _ = _generate(tmp_path / 'small', camera=dict(scale=0.5))
    images = _images(tmp_path / 'small', small)
    assert all(img.shape == (64, 32, 3) for img in images)
    assert _high_freq(images) < 0.7 * _high_freq(
        _images(tmp_path / 'full', full))


def _back_share(records):
    """Share of photos whose (detailed) caption names a back view."""
    views = []
    for rec in records:
        text = rec['captions'][0].lower()
        back = any(v in text for v in BACK_VIEW)
        assert back != any(v in text for v in FRONT_VIEW), text
        views.append(back)
    return float(np.mean(views))


def test_back_view_prob(tmp_path):
    shares = {
        p: _back_share(_generate(tmp_path / str(p), caption_style='detailed',
                                 camera=dict(back_view_prob=p))[0])
        for p in (0.0, 0.4, 1.0)
    }
    assert shares[0.0] == 0.0 and shares[1.0] == 1.0
    assert 0.2 < shares[0.4] < 0.6


@pytest.mark.parametrize('preset', NEW_CAMERAS)
def test_camera_presets(tmp_path, preset):
    """Each preset: fewer high frequencies, its cast, more back views."""
    factors = CAMERA_PRESETS[preset]
    num_ids = (40, 0, 0)
    runs = {}
    for name, camera in [('standard', 'standard'), ('preset', preset),
                         ('no_cast', dict(factors, color_cast=(0, 0, 0)))]:
        root = tmp_path / name
        records, _ = _generate(root, num_ids=num_ids, camera=camera,
                               caption_style='detailed')
        runs[name] = (records, _images(root, records))
    (std_recs, std), (recs, imgs), (_, no_cast) = (
        runs['standard'], runs['preset'], runs['no_cast'])
    assert _high_freq(imgs) < 0.5 * _high_freq(std)
    # Same photos but for the cast: the means move by about the cast.
    shift = _channel_means(imgs) - _channel_means(no_cast)
    cast = np.array(factors['color_cast'], dtype=float)
    assert np.all(np.abs(shift - cast) <= 0.25 * np.abs(cast) + 2), shift
    # Against the standard camera too, blue minus red moves with the cast.
    diff = _channel_means(imgs) - _channel_means(std)
    assert np.sign(diff[2] - diff[0]) == np.sign(cast[2] - cast[0])
    assert _back_share(recs) > _back_share(std_recs) + 0.1
