"""Generator of a synthetic text-based person retrieval dataset.

The dataset is written in the on-disk format of CUHK-PEDES, so that the
ordinary CUHK-PEDES loader reads it unchanged::

    out_dir/
        reid_raw.json          # list of per-image records (CUHK schema)
        imgs/train/0001_01.jpg
        imgs/val/...
        imgs/test/...
        synth_meta.json        # generation arguments + format version
        synth_attributes.json  # attributes of every identity (for checks)

Every identity is a cartoon pedestrian drawn from a set of clearly visible
attributes (gender, hair, upper and lower garment with their colours, shoes,
bag, hat), and every caption names those attributes in one of several
sentence templates. Attribute values are shared by many identities while
their combination is unique, so a model can only retrieve the unseen test
identities by learning the attribute words and composing them. This makes
the data a fast, dependency-free smoke test for whole training pipelines: a
tiny CLIP trained from scratch for a few CPU minutes should already reach a
test R@1 far above chance.

The module depends only on numpy, Pillow and (optionally) tqdm so that it
can be imported without the rest of the package.
"""
import bisect
import collections
import colorsys
import functools
import itertools
import json
import numbers
import os
import re
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw

SYNTH_META_FILE = 'synth_meta.json'
SYNTH_ATTR_FILE = 'synth_attributes.json'
SYNTH_FORMAT_VERSION = 1
ANNO_FILE = 'reid_raw.json'
IMG_DIR = 'imgs'
SPLITS = ('train', 'val', 'test')

RGB = Tuple[int, int, int]

# Hues far apart and luminance levels far apart so that the colour names stay
# recognisable after JPEG, down-scaling and brightness jitter.
COLORS: Dict[str, RGB] = {
    'red': (205, 30, 35),
    'blue': (35, 70, 210),
    'green': (30, 150, 55),
    'yellow': (245, 215, 35),
    'black': (22, 22, 24),
    'white': (242, 242, 238),
    'gray': (128, 128, 128),
    'purple': (125, 45, 170),
    'orange': (250, 135, 20),
    'pink': (250, 150, 195),
    'brown': (115, 65, 30),
}
HAIR_COLORS: Dict[str, RGB] = {
    'black': (28, 22, 20),
    'brown': (105, 62, 32),
    'blond': (228, 196, 118),
    'gray': (160, 160, 160),
}
SKIN_TONES: Tuple[RGB, ...] = ((242, 205, 175), (226, 182, 142),
                               (192, 142, 102), (140, 96, 66))

GENDERS = ('man', 'woman')
HAIR_LENGTHS = ('short', 'long')
UPPER_KINDS = ('t-shirt', 'shirt', 'jacket', 'coat', 'sweater', 'hoodie')
LOWER_KINDS = ('trousers', 'jeans', 'shorts', 'skirt')
BAG_KINDS = ('none', 'backpack', 'handbag', 'shoulder bag')
HAT_KINDS = ('none', 'cap', 'hat')

# Priors loosely follow real pedestrians (long hair, skirts and handbags are
# more frequent for women); they never reach 0 or 1 except for skirts, so
# each attribute value still co-occurs with both genders.
_LONG_HAIR_P = {'man': 0.1, 'woman': 0.75}
_HAIR_COLOR_P = {'black': 0.4, 'brown': 0.3, 'blond': 0.2, 'gray': 0.1}
_LOWER_P = {
    'man': (0.4, 0.35, 0.25, 0.0),
    'woman': (0.25, 0.3, 0.2, 0.25),
}
_BAG_P = {
    'man': (0.4, 0.3, 0.05, 0.25),
    'woman': (0.3, 0.2, 0.3, 0.2),
}
_HAT_P = (0.6, 0.2, 0.2)

# Vocabulary of the captions. Each entry lists interchangeable surface forms
# so that the text encoder must learn synonyms, as with real annotations.
_NOUNS = {
    'man': ('man', 'guy', 'gentleman', 'young man'),
    'woman': ('woman', 'lady', 'girl', 'young woman'),
}
_PRONOUNS = {'man': ('he', 'his'), 'woman': ('she', 'her')}
_UPPER_WORDS = {
    't-shirt': ('t-shirt', 'tee', 'short-sleeved t-shirt'),
    'shirt': ('shirt', 'long-sleeved shirt', 'button-up shirt',
              'collared shirt'),
    'jacket': ('jacket', 'zip-up jacket', 'short jacket'),
    'coat': ('coat', 'long coat', 'overcoat'),
    'sweater': ('sweater', 'jumper', 'knitted sweater', 'pullover'),
    'hoodie': ('hoodie', 'hooded sweatshirt', 'hooded top'),
}
# (word, is_plural): plural garments take "a pair of" or no article.
_LOWER_WORDS = {
    'trousers': (('trousers', True), ('pants', True), ('long pants', True),
                 ('slacks', True)),
    'jeans': (('jeans', True), ('denim jeans', True)),
    'shorts': (('shorts', True), ('knee-length shorts', True)),
    'skirt': (('skirt', False), ('knee-length skirt', False),
              ('flared skirt', False)),
}
_SHOE_WORDS = ('shoes', 'sneakers')
_BAG_IS = {
    'backpack': ('carrying {ac} backpack',
                 'wearing {ac} backpack on {poss} back'),
    'handbag': ('carrying {ac} handbag',
                'holding {ac} handbag in {poss} hand',
                'holding {ac} purse'),
    'shoulder bag': ('carrying {ac} shoulder bag',
                     'carrying {ac} bag over {poss} shoulder',
                     'wearing {ac} bag across {poss} body'),
}
_BAG_NP = {
    'backpack': ('{ac} backpack', '{ac} rucksack'),
    'handbag': ('{ac} handbag', '{ac} purse'),
    'shoulder bag': ('{ac} shoulder bag', '{ac} messenger bag',
                     '{ac} crossbody bag'),
}
_HAT_NP = {
    'cap': ('{ac} cap', '{ac} baseball cap'),
    'hat': ('{ac} hat', '{ac} wide-brimmed hat'),
}
_POSE_WORDS = {
    'front': ('Facing the camera', 'Seen from the front',
              'In a front view'),
    'back': ('Seen from behind', 'Seen from the back', 'In a back view'),
}
_MIN_WORDS, _MAX_WORDS = 15, 45
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def tokenize(caption: str) -> List[str]:
    """Split a caption into lower-cased word tokens, without punctuation.

    Hyphenated words such as ``t-shirt`` stay one token, as in the
    ``processed_tokens`` field of CUHK-PEDES.

    Args:
        caption (str): An English sentence.

    Returns:
        list[str]: The word tokens.
    """
    return _TOKEN_RE.findall(caption.lower())


# ---------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------
def _choice(rng: np.random.Generator, options: Sequence[Any],
            p: Optional[Sequence[float]] = None) -> Any:
    # Cheaper than rng.choice, which dominates the run time of captions.
    if p is None:
        return options[int(rng.integers(len(options)))]
    idx = bisect.bisect_right(list(itertools.accumulate(p)),
                              rng.random() * sum(p))
    return options[min(idx, len(options) - 1)]


def _jitter(rng: np.random.Generator, rgb: RGB, amount: int = 12) -> RGB:
    # Per-identity shade variation: one colour name must cover a range of
    # pixel values, not a single one the model could memorise.
    delta = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in np.clip(np.array(rgb) + delta, 0, 255))


def _sample_attributes(rng: np.random.Generator) -> Dict[str, Any]:
    gender = _choice(rng, GENDERS)
    long_p = _LONG_HAIR_P[gender]
    bag = _choice(rng, BAG_KINDS, _BAG_P[gender])
    hat = _choice(rng, HAT_KINDS, _HAT_P)
    color_names = tuple(COLORS)
    return {
        'gender': gender,
        'hair_length': _choice(rng, HAIR_LENGTHS, (1 - long_p, long_p)),
        'hair_color': _choice(rng, tuple(_HAIR_COLOR_P),
                              tuple(_HAIR_COLOR_P.values())),
        'upper': _choice(rng, UPPER_KINDS),
        'upper_color': _choice(rng, color_names),
        'lower': _choice(rng, LOWER_KINDS, _LOWER_P[gender]),
        'lower_color': _choice(rng, color_names),
        'shoes_color': _choice(rng, color_names),
        'bag': bag,
        'bag_color': None if bag == 'none' else _choice(rng, color_names),
        'hat': hat,
        'hat_color': None if hat == 'none' else _choice(rng, color_names),
    }


def _sample_render_params(rng: np.random.Generator,
                          attrs: Dict[str, Any]) -> Dict[str, Any]:
    # Identity-level nuisance factors that no caption mentions.
    colors = {
        key: _jitter(rng, COLORS[attrs[key]])
        for key in ('upper_color', 'lower_color', 'shoes_color',
                    'bag_color', 'hat_color') if attrs[key] is not None
    }
    colors['hair'] = _jitter(rng, HAIR_COLORS[attrs['hair_color']], 8)
    colors['skin'] = _jitter(rng, _choice(rng, SKIN_TONES), 6)
    return {
        'colors': colors,
        'build': float(rng.uniform(0.94, 1.06)),
        'side': 1 if rng.random() < 0.5 else -1,
    }


_MAJOR_KEYS = ('gender', 'upper', 'upper_color', 'lower', 'lower_color')


def _sample_identities(rng: np.random.Generator,
                       total: int) -> List[Dict[str, Any]]:
    """Sample ``total`` identities with pairwise different attributes.

    The most visible attributes (gender, garments and their colours) are
    kept unique as long as a few re-draws find a free combination, so that
    test identities are told apart by what a caption mentions first; the
    full attribute tuple is always unique.
    """
    used_major, used_full = set(), set()
    identities = []
    for _ in range(total):
        for attempt in range(10000):
            attrs = _sample_attributes(rng)
            full = tuple(attrs[k] for k in sorted(attrs))
            major = tuple(attrs[k] for k in _MAJOR_KEYS)
            if full in used_full or (attempt < 30 and major in used_major):
                continue
            break
        else:  # pragma: no cover - the attribute space has ~1e9 tuples
            raise RuntimeError('could not sample unique identities')
        used_full.add(full)
        used_major.add(major)
        identities.append({
            'attrs': attrs,
            'render': _sample_render_params(rng, attrs)
        })
    return identities


# ---------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------
def _article(phrase: str) -> str:
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _join(items: Sequence[str]) -> str:
    """Join phrases as an English list: ``a, b and c``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return ''.join(items)
    return ', '.join(items[:-1]) + ' and ' + items[-1]


def _caption_phrases(rng: np.random.Generator, attrs: Dict[str, Any],
                     pose: str) -> Dict[str, Optional[str]]:
    """Choose the surface form of every attribute for one caption."""
    gender = attrs['gender']
    pron, poss = _PRONOUNS[gender]
    upper_word = _choice(rng, _UPPER_WORDS[attrs['upper']])
    lower_word, plural = _choice(rng, _LOWER_WORDS[attrs['lower']])
    lower = f"{attrs['lower_color']} {lower_word}"
    if not plural:
        lower = _article(lower)
    elif rng.random() < 0.3:
        lower = 'a pair of ' + lower
    shoes = f"{attrs['shoes_color']} {_choice(rng, _SHOE_WORDS)}"
    if rng.random() < 0.3:
        shoes = 'a pair of ' + shoes
    bag, hat = attrs['bag'], attrs['hat']
    bag_is = bag_np = hat_np = None
    if bag != 'none':
        # '{ac}' is the colour with its article: 'an orange', 'a red'.
        fmt = {'ac': _article(attrs['bag_color']), 'poss': poss}
        bag_is = _choice(rng, _BAG_IS[bag]).format(**fmt)
        bag_np = _choice(rng, _BAG_NP[bag]).format(**fmt)
    if hat != 'none':
        hat_np = _choice(rng, _HAT_NP[hat]).format(
            ac=_article(attrs['hat_color']))
    return {
        'noun': _choice(rng, _NOUNS[gender]),
        'pron': pron,
        'poss': poss,
        'hair': f"{attrs['hair_length']} {attrs['hair_color']} hair",
        'hair_len': attrs['hair_length'],
        'hair_col': attrs['hair_color'],
        'upper': _article(f"{attrs['upper_color']} {upper_word}"),
        'upper_word': upper_word,
        'upper_col': attrs['upper_color'],
        'lower': lower,
        'shoes': shoes,
        'bag_is': bag_is,
        'bag_np': bag_np,
        'hat_np': hat_np,
        'pose': _choice(rng, _POSE_WORDS[pose]),
    }


def _extras(p: Dict[str, Optional[str]]) -> str:
    """A closing sentence for the bag and the hat, if any."""
    parts = [p['bag_is']]
    if p['hat_np']:
        parts.append('wearing ' + p['hat_np'])
    parts = [x for x in parts if x]
    if not parts:
        return ''
    return f" {_cap(p['pron'])} is {' and '.join(parts)}."


# Each template returns one caption; they differ in sentence structure and
# in the order in which the attributes are mentioned.
def _t_with_hair_first(p):
    return (f"{_cap(_article(p['noun']))} with {p['hair']} is wearing "
            f"{p['upper']}, {p['lower']} and {p['shoes']}." + _extras(p))


def _t_this_person(p):
    text = (f"This {p['noun']} has {p['hair']}. {_cap(p['pron'])} wears "
            f"{p['upper']} with {p['lower']} and {p['shoes']}")
    if p['bag_is']:
        text += f", and is {p['bag_is']}"
    text += '.'
    if p['hat_np']:
        text += f" On {p['poss']} head is {p['hat_np']}."
    return text


def _t_garments_first(p):
    text = (f"{_cap(p['upper'])} and {p['lower']} are worn by "
            f"{_article(p['noun'])} with {p['hair']} and {p['shoes']}.")
    if p['bag_is']:
        text += f" The {p['noun']} is {p['bag_is']}."
    if p['hat_np']:
        text += f" {_cap(p['pron'])} also has {p['hat_np']} on."
    return text


def _t_pose(p):
    return (f"{p['pose']}, {_article(p['noun'])} walks in {p['upper']} "
            f"and {p['lower']}. {_cap(p['poss'])} hair is {p['hair_len']} "
            f"and {p['hair_col']}, and {p['pron']} has {p['shoes']} on."
            + _extras(p))


def _t_picture_list(p):
    text = (f"The {p['noun']} in this picture is wearing "
            f"{_join([p['hat_np'], p['upper'], p['lower'], p['shoes']])}. "
            f"{_cap(p['pron'])} has {p['hair']}")
    if p['bag_is']:
        text += f" and is {p['bag_is']}"
    return text + '.'


def _t_dressed_fragment(p):
    return (f"{_cap(_article(p['noun']))} dressed in {p['upper']} and "
            f"{p['lower']}, with "
            f"{_join([p['hair'], p['shoes'], p['hat_np'], p['bag_np']])}.")


def _t_colour_after(p):
    text = (f"{_cap(p['pron'])} is {_article(p['noun'])} with {p['hair']}. "
            f"{_cap(p['pron'])} is dressed in {_article(p['upper_word'])} "
            f"in {p['upper_col']}, {p['lower']} and {p['shoes']}.")
    if p['bag_is']:
        text += f" {_cap(p['pron'])} is {p['bag_is']}."
    if p['hat_np']:
        text += f" {_cap(p['pron'])} also wears {p['hat_np']}."
    return text


def _t_participle_first(p):
    text = (f"Wearing {p['upper']}, {p['lower']} and {p['shoes']}, the "
            f"{p['noun']} has {p['hair']}.")
    if p['bag_is']:
        text += f" {_cap(p['pron'])} is {p['bag_is']}."
    if p['hat_np']:
        text += f" {_cap(p['hat_np'])} covers {p['poss']} head."
    return text


CAPTION_TEMPLATES: Tuple[Callable[[Dict[str, Optional[str]]], str], ...] = (
    _t_with_hair_first, _t_this_person, _t_garments_first, _t_pose,
    _t_picture_list, _t_dressed_fragment, _t_colour_after,
    _t_participle_first)


def _make_captions(rng: np.random.Generator, attrs: Dict[str, Any],
                  pose: str, num: int) -> List[str]:
    """Write ``num`` different captions describing one image.

    Templates are drawn without replacement, so the captions of one image
    have different sentence structures (as long as ``num`` does not exceed
    the number of templates); synonyms are drawn anew for every caption.

    Args:
        rng (np.random.Generator): Source of randomness.
        attrs (dict): Attributes of the identity, as in
            ``synth_attributes.json``.
        pose (str): ``'front'`` or ``'back'``.
        num (int): Number of captions.

    Returns:
        list[str]: Captions of 15 to 45 words each.
    """
    captions: List[str] = []
    fallback: Optional[str] = None
    order: List[int] = []
    for _ in range(num * 20):
        if len(captions) == num:
            break
        if not order:
            order = [int(i) for i in rng.permutation(len(CAPTION_TEMPLATES))]
        template = CAPTION_TEMPLATES[order.pop()]
        text = template(_caption_phrases(rng, attrs, pose))
        if attrs['bag'] == 'none' and rng.random() < 0.25:
            # Negative statements appear in real annotations too.
            text += f" {_cap(_PRONOUNS[attrs['gender']][0])} carries no bag."
        if text in captions:
            continue
        if _MIN_WORDS <= len(tokenize(text)) <= _MAX_WORDS:
            captions.append(text)
        elif fallback is None:
            fallback = text
    while len(captions) < num:  # pragma: no cover - templates always fit
        captions.append(fallback or captions[-1])
    return captions


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)


def _muted_color(rng: np.random.Generator) -> RGB:
    # Low saturation keeps the background from competing with the garment
    # colours that the captions name.
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.03, 0.28),
                                  rng.uniform(0.3, 0.8))
    return (int(r * 255), int(g * 255), int(b * 255))


def _background(rng: np.random.Generator, height: int, width: int,
                floor_y: float, ss: int) -> Image.Image:
    """Draw a street-like background: flat, gradient or blotchy.

    Everything is up-sampled from a few pixels with PIL, which is much
    faster than full-size numpy arithmetic. Smooth up-sampling is done at
    the output resolution only (``ss`` times smaller), the rest by pixel
    repetition, which the final ``reduce(ss)`` undoes exactly.
    """
    c0 = _muted_color(rng)
    mode = int(rng.integers(4))
    if mode == 0:
        img = Image.new('RGB', (width, height), c0)
    else:
        if mode == 1:  # vertical gradient
            grid = np.array([[c0], [_muted_color(rng)]], dtype=np.float32)
        elif mode == 2:  # horizontal gradient
            grid = np.array([[c0, _muted_color(rng)]], dtype=np.float32)
        else:
            # Smooth blotches, like blurred scenery behind a pedestrian.
            grid = np.asarray(c0, dtype=np.float32) + rng.normal(
                0.0, 18.0, size=(6, 3, 3))
        small = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8))
        img = small.resize((width // ss, height // ss), Image.BILINEAR)
        img = img.resize((width, height), Image.NEAREST)
    if rng.random() < 0.5:
        # A ground plane of another muted colour below the feet.
        top = int(max(0, min(height, floor_y)))
        floor = Image.new('RGB', (width, height - top), _muted_color(rng))
        img.paste(Image.blend(img.crop((0, top, width, height)), floor, 0.6),
                  (0, top))
    return img


class _Pen:
    """Draws in figure coordinates.

    ``u`` is the horizontal offset from the body axis and ``v`` the height
    from the top of the figure, both in units of the figure height, so the
    body layout is independent of image size, scale and shift.
    """

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, y0: float,
                 fh: float, line: int):
        self.draw = draw
        self.cx, self.y0, self.fh = cx, y0, fh
        self.line = line

    def pt(self, u: float, v: float) -> Tuple[float, float]:
        return (self.cx + u * self.fh, self.y0 + v * self.fh)

    def box(self, u0: float, v0: float, u1: float,
            v1: float) -> List[float]:
        (x0, y0), (x1, y1) = self.pt(u0, v0), self.pt(u1, v1)
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    def poly(self, pts: Sequence[Tuple[float, float]], fill: RGB,
             outline: bool = True) -> None:
        # A darker outline separates touching garments of similar colour
        # and the figure from the background.
        xy = [self.pt(u, v) for u, v in pts]
        self.draw.polygon(xy, fill=fill)
        if outline:
            # A closed wide line: polygon(width > 1) renders through a
            # temporary mask and is several times slower.
            self.draw.line(xy + xy[:1], fill=_shade(fill, 0.55),
                           width=self.line)

    def ellipse(self, u0, v0, u1, v1, fill: RGB,
                outline: bool = True) -> None:
        self.draw.ellipse(self.box(u0, v0, u1, v1), fill=fill,
                          outline=_shade(fill, 0.55) if outline else None,
                          width=self.line)

    def chord(self, u0, v0, u1, v1, start: float, end: float,
              fill: RGB) -> None:
        self.draw.chord(self.box(u0, v0, u1, v1), start, end, fill=fill,
                        outline=_shade(fill, 0.55), width=self.line)

    def rrect(self, u0, v0, u1, v1, fill: RGB, radius: float = 0.01) -> None:
        """A rectangle with chamfered corners.

        Indistinguishable from round corners at this resolution and several
        times faster than ``ImageDraw.rounded_rectangle``.
        """
        u0, u1 = min(u0, u1), max(u0, u1)
        r = min(radius, (u1 - u0) / 2, (v1 - v0) / 2)
        self.poly([(u0 + r, v0), (u1 - r, v0), (u1, v0 + r), (u1, v1 - r),
                   (u1 - r, v1), (u0 + r, v1), (u0, v1 - r), (u0, v0 + r)],
                  fill)

    def line_(self, pts: Sequence[Tuple[float, float]], fill: RGB,
              width: float) -> None:
        self.draw.line([self.pt(u, v) for u, v in pts], fill=fill,
                       width=max(1, int(round(width * self.fh))))

    def limb(self, p0: Tuple[float, float], p1: Tuple[float, float],
             w0: float, w1: float, fill: RGB) -> None:
        """A tapered quad from ``p0`` (width ``w0``) to ``p1``."""
        (u0, v0), (u1, v1) = p0, p1
        du, dv = u1 - u0, v1 - v0
        norm = max((du * du + dv * dv)**0.5, 1e-6)
        nu, nv = -dv / norm, du / norm
        self.poly([(u0 + nu * w0 / 2, v0 + nv * w0 / 2),
                   (u1 + nu * w1 / 2, v1 + nv * w1 / 2),
                   (u1 - nu * w1 / 2, v1 - nv * w1 / 2),
                   (u0 - nu * w0 / 2, v0 - nv * w0 / 2)], fill)


def _lerp(p0: Tuple[float, float], p1: Tuple[float, float],
          t: float) -> Tuple[float, float]:
    return (p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t)


def _draw_person(pen: _Pen, ident: Dict[str, Any], pose: str, stride: float,
                 spread: float) -> None:
    """Draw one pedestrian, back to front in painter's order."""
    a = ident['attrs']
    r = ident['render']
    col = r['colors']
    skin, hair = col['skin'], col['hair']
    upper_c = col['upper_color']
    lower_c = col['lower_color']
    front = pose == 'front'
    # Seen from the back, the person's left and right swap in the image.
    side = r['side'] if front else -r['side']
    b = r['build']
    if a['gender'] == 'man':
        sw, ww, hw, hhw, arm_w = 0.118 * b, 0.1 * b, 0.097 * b, 0.05, 0.046
        leg_top, leg_bot = 0.054 * b, 0.038
    else:
        sw, ww, hw, hhw, arm_w = 0.1 * b, 0.08 * b, 0.1 * b, 0.047, 0.038
        leg_top, leg_bot = 0.052 * b, 0.032
    v_s = 0.18  # shoulder line
    head = (-hhw, 0.03, hhw, 0.155)
    upper = a['upper']
    lower = a['lower']
    bag = a['bag']
    if upper == 'jacket':  # a jacket is bulkier than a shirt
        sw, ww = sw + 0.008, ww + 0.008

    # --- behind the body --------------------------------------------------
    if bag == 'backpack' and front:
        # Peeks out above the shoulders and beside the arms.
        pen.rrect(-sw - 0.05, 0.16, sw + 0.05, 0.45, col['bag_color'], 0.03)
    if upper == 'hoodie' and front:
        pen.ellipse(-hhw - 0.03, 0.07, hhw + 0.03, 0.215, upper_c)
    if a['hair_length'] == 'long' and front:
        pen.rrect(-hhw - 0.018, 0.035, hhw + 0.018, 0.25, hair, 0.03)

    # --- legs, shoes and lower garment -----------------------------------
    hips = [(-hw * 0.5, 0.52), (hw * 0.5, 0.52)]
    ankles = [(-hw * 0.5 - 0.008 - stride, 0.935),
              (hw * 0.5 + 0.008 + stride, 0.935)]
    bare_legs = lower in ('shorts', 'skirt')
    for hip, ankle in zip(hips, ankles):
        pen.limb(hip, ankle, leg_top, leg_bot, skin if bare_legs else lower_c)
        if lower == 'shorts':
            pen.limb(hip, _lerp(hip, ankle, 0.33), leg_top * 1.25,
                     leg_top * 1.15, lower_c)
        elif lower == 'jeans':
            # Light outer seam and turned-up hems read as denim.
            out = 1 if ankle[0] > 0 else -1
            seam = _shade(lower_c, 1.35) if sum(lower_c) < 600 else _shade(
                lower_c, 0.8)
            pen.line_([(hip[0] + out * leg_top * 0.4, hip[1]),
                       (ankle[0] + out * leg_bot * 0.38, 0.9)], seam, 0.006)
            pen.limb(_lerp(hip, ankle, 0.92), ankle, leg_bot * 1.12,
                     leg_bot * 1.12, seam)
        else:
            pen.line_([_lerp(hip, ankle, 0.15), _lerp(hip, ankle, 0.95)],
                      _shade(lower_c, 0.8), 0.004)
        ux = ankle[0]
        pen.chord(ux - 0.042, 0.918, ux + 0.042, 1.062, 180, 360,
                  col['shoes_color'])
    if lower == 'skirt':
        pen.poly([(-ww - 0.006, 0.465), (ww + 0.006, 0.465),
                  (hw + 0.06, 0.7), (-hw - 0.06, 0.7)], lower_c)
    else:
        pen.poly([(-ww, 0.465), (ww, 0.465), (hw + 0.004, 0.56),
                  (-hw - 0.004, 0.56)], lower_c)
        if lower == 'jeans':
            pen.rrect(-ww, 0.465, ww, 0.485, _shade(lower_c, 0.7), 0.004)

    # --- torso -----------------------------------------------------------
    pen.rrect(-0.022, 0.13, 0.022, 0.2, skin, 0.01)  # neck
    hem = 0.5 if upper != 'jacket' else 0.51
    if upper == 'coat':
        torso = [(-sw + 0.025, v_s), (sw - 0.025, v_s), (sw + 0.004, 0.21),
                 (hw + 0.035, 0.75), (-hw - 0.035, 0.75), (-sw - 0.004, 0.21)]
    else:
        torso = [(-sw + 0.025, v_s), (sw - 0.025, v_s), (sw, 0.21),
                 (ww, hem), (-ww, hem), (-sw, 0.21)]
    pen.poly(torso, upper_c)
    dark = _shade(upper_c, 0.6) if sum(upper_c) > 120 else _shade(
        upper_c, 2.6)
    if front:
        _draw_upper_front(pen, upper, upper_c, dark, skin, ww, hw)
    elif upper == 'hoodie':
        pen.chord(-0.07, 0.14, 0.07, 0.29, 0, 180, _shade(upper_c, 0.85))
    elif upper == 'coat':
        pen.line_([(0, 0.6), (0, 0.75)], dark, 0.006)
    if upper == 'sweater':
        # Knit ribbing: hem band and faint horizontal courses.
        pen.rrect(-ww, 0.47, ww, 0.5, _shade(upper_c, 0.82), 0.004)
        for v in (0.26, 0.32, 0.38, 0.44):
            pen.line_([(-sw + 0.02, v), (sw - 0.02, v)],
                      _shade(upper_c, 0.82), 0.004)

    if bag == 'backpack' and not front:
        pen.rrect(-sw + 0.012, 0.19, sw - 0.012, 0.47, col['bag_color'], 0.03)
        pen.rrect(-0.06, 0.35, 0.06, 0.45, _shade(col['bag_color'], 0.85),
                  0.015)
    elif bag == 'backpack':
        for s in (-1, 1):
            pen.limb((s * (sw - 0.04), v_s - 0.003), (s * (sw - 0.05), 0.42),
                     0.026, 0.024, col['bag_color'])
        pen.line_([(-(sw - 0.05), 0.3), (sw - 0.05, 0.3)], col['bag_color'],
                  0.012)
    if bag == 'shoulder bag':
        pen.line_([(-side * (sw - 0.03), v_s + 0.004),
                   (side * (hw + 0.012), 0.455)], col['bag_color'], 0.016)

    # --- arms ------------------------------------------------------------
    hands = []
    for s in (-1, 1):
        shoulder = (s * (sw - 0.014), v_s + 0.022)
        wrist = (s * (sw + 0.018 + spread), 0.475)
        long_sleeve = upper != 't-shirt'
        pen.limb(shoulder, wrist, arm_w, arm_w * 0.8,
                 upper_c if long_sleeve else skin)
        if not long_sleeve:
            pen.limb(shoulder, _lerp(shoulder, wrist, 0.34), arm_w * 1.3,
                     arm_w * 1.2, upper_c)
        elif upper in ('sweater', 'shirt'):
            pen.limb(_lerp(shoulder, wrist, 0.9), wrist, arm_w * 0.85,
                     arm_w * 0.82, _shade(upper_c, 0.82))
        hands.append((wrist[0], wrist[1] + 0.015))
    hand_r = arm_w * 0.5
    for hx, hy in hands:
        pen.ellipse(hx - hand_r, hy - hand_r * 1.2, hx + hand_r,
                    hy + hand_r * 1.2, skin)

    if bag == 'handbag':
        hx, hy = hands[0 if side < 0 else 1]
        bc = col['bag_color']
        pen.draw.arc(pen.box(hx - 0.028, hy - 0.01, hx + 0.028, hy + 0.07),
                     180, 360, fill=_shade(bc, 0.6),
                     width=max(1, int(0.008 * pen.fh)))
        pen.poly([(hx - 0.042, hy + 0.03), (hx + 0.042, hy + 0.03),
                  (hx + 0.052, hy + 0.125), (hx - 0.052, hy + 0.125)], bc)
        pen.ellipse(hx - hand_r, hy - hand_r * 1.2, hx + hand_r,
                    hy + hand_r * 1.2, skin)
    elif bag == 'shoulder bag':
        bx = side * (hw + 0.02)
        bc = col['bag_color']
        pen.rrect(bx - 0.052, 0.44, bx + 0.052, 0.56, bc, 0.012)
        pen.line_([(bx - 0.052, 0.48), (bx + 0.052, 0.48)], _shade(bc, 0.6),
                  0.005)

    # --- head, hair and hat ----------------------------------------------
    pen.ellipse(*head, skin)
    if front:
        pen.chord(-hhw - 0.005, 0.022, hhw + 0.005, 0.12, 180, 360, hair)
        for s in (-1, 1):
            pen.rrect(s * (hhw + 0.004), 0.06, s * (hhw - 0.012), 0.095,
                      hair, 0.004)
            # Eyes: make the facing direction visible.
            pen.ellipse(s * 0.018 - 0.006, 0.09, s * 0.018 + 0.006, 0.1,
                        (40, 30, 30), outline=False)
        if a['hair_length'] == 'long':
            for s in (-1, 1):
                pen.poly([(s * (hhw - 0.01), 0.06),
                          (s * (hhw + 0.02), 0.07),
                          (s * (hhw + 0.026), 0.27),
                          (s * (hhw - 0.006), 0.25)], hair)
    else:
        pen.ellipse(-hhw - 0.004, 0.024, hhw + 0.004, 0.13, hair)
        if a['hair_length'] == 'long':
            pen.rrect(-hhw - 0.02, 0.07, hhw + 0.02, 0.285, hair, 0.025)
    if a['hat'] == 'cap':
        hc = col['hat_color']
        pen.chord(-hhw - 0.007, 0.016, hhw + 0.007, 0.14, 180, 360, hc)
        if front:
            pen.ellipse(-hhw - 0.014, 0.06, hhw + 0.014, 0.09,
                        _shade(hc, 0.8))
        else:
            pen.line_([(-hhw, 0.07), (hhw, 0.07)], _shade(hc, 0.7), 0.006)
    elif a['hat'] == 'hat':
        hc = col['hat_color']
        pen.rrect(-hhw + 0.004, 0.0, hhw - 0.004, 0.07, hc, 0.015)
        pen.ellipse(-hhw - 0.05, 0.048, hhw + 0.05, 0.082, hc)
        pen.rrect(-hhw + 0.004, 0.042, hhw - 0.004, 0.056, _shade(hc, 0.6),
                  0.002)


def _draw_upper_front(pen: _Pen, upper: str, upper_c: RGB, dark: RGB,
                      skin: RGB, ww: float, hw: float) -> None:
    """Garment details that only show from the front."""
    if upper == 't-shirt':
        pen.chord(-0.032, 0.15, 0.032, 0.215, 0, 180, skin)
    elif upper == 'shirt':
        pen.line_([(0, 0.2), (0, 0.5)], dark, 0.005)
        for v in (0.25, 0.31, 0.37, 0.43):
            pen.ellipse(-0.005, v - 0.005, 0.005, v + 0.005, dark,
                        outline=False)
        for s in (-1, 1):
            pen.poly([(s * 0.002, 0.205), (s * 0.036, 0.172),
                      (s * 0.03, 0.215)], _shade(upper_c, 0.85))
    elif upper == 'jacket':
        pen.rrect(-0.036, 0.165, 0.036, 0.195, _shade(upper_c, 0.8), 0.006)
        pen.line_([(0, 0.19), (0, 0.51)], dark, 0.007)
        pen.rrect(-ww, 0.485, ww, 0.51, _shade(upper_c, 0.8), 0.004)
    elif upper == 'coat':
        for s in (-1, 1):
            pen.line_([(s * 0.05, 0.18), (s * 0.01, 0.32)], dark, 0.006)
            for v in (0.36, 0.45, 0.54):
                pen.ellipse(s * 0.03 - 0.006, v - 0.006, s * 0.03 + 0.006,
                            v + 0.006, dark, outline=False)
        pen.line_([(0, 0.32), (0, 0.75)], dark, 0.004)
    elif upper == 'sweater':
        pen.chord(-0.034, 0.15, 0.034, 0.215, 0, 180, _shade(upper_c, 0.82))
        pen.chord(-0.026, 0.15, 0.026, 0.205, 0, 180, skin)
    elif upper == 'hoodie':
        pen.poly([(-0.07, 0.38), (0.07, 0.38), (0.085, 0.47),
                  (-0.085, 0.47)], _shade(upper_c, 0.85))
        light = _shade(upper_c, 1.6) if sum(upper_c) < 450 else dark
        for s in (-1, 1):
            pen.line_([(s * 0.02, 0.2), (s * 0.022, 0.28)], light, 0.006)


def _noise_banks(rng: np.random.Generator,
                 image_size: Tuple[int, int]) -> List[Image.Image]:
    """Pre-computed pixel noise, one bank per noise level.

    Every image adds a random crop of a bank: adding fresh Gaussian noise
    to every image would cost more than drawing it.
    """
    height, width = image_size
    banks = []
    for sigma in (1.5, 3.0, 4.5):
        noise = rng.standard_normal((2 * height, 2 * width, 3))
        banks.append(Image.fromarray(
            np.clip(np.rint(128.0 + sigma * noise), 0, 255).astype(
                np.uint8)))
    return banks


def _render_image(rng: np.random.Generator, ident: Dict[str, Any],
                  image_size: Tuple[int, int], pose: str,
                  noise_banks: Sequence[Image.Image]) -> Image.Image:
    """Render one photo of an identity with random per-image variation.

    Args:
        rng (np.random.Generator): Source of randomness.
        ident (dict): An identity from :func:`_sample_identities`.
        image_size (tuple[int, int]): ``(height, width)`` of the result.
        pose (str): ``'front'`` or ``'back'``.
        noise_banks (Sequence[PIL.Image.Image]): From :func:`_noise_banks`
            for the same ``image_size``.

    Returns:
        PIL.Image.Image: An RGB image.
    """
    height, width = image_size
    # Draw at twice the size and average down: cheap anti-aliasing.
    ss = 2
    hs, ws = height * ss, width * ss
    # The body incl. arms spans about 0.36 figure heights; keep it inside a
    # narrow crop even for unusual aspect ratios.
    fh = min(rng.uniform(0.82, 0.95) * hs, ws / 0.37)
    y0 = (hs - fh) * rng.uniform(0.2, 0.8)
    slack = max(ws / 2 - 0.17 * fh, 0.04 * ws)
    cx = ws / 2 + rng.uniform(-1.0, 1.0) * slack
    stride = float(rng.uniform(-0.012, 0.03))
    spread = float(rng.uniform(0.0, 0.03))
    img = _background(rng, hs, ws, y0 + 0.97 * fh, ss)
    pen = _Pen(ImageDraw.Draw(img), cx, y0, fh, line=ss)
    _draw_person(pen, ident, pose, stride, spread)
    img = img.reduce(ss)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    # Brightness jitter and sensor-like noise, with PIL's C operations.
    gain = rng.uniform(0.82, 1.15)
    offset = int(round(rng.uniform(-10.0, 10.0)))
    img = Image.blend(Image.new('RGB', img.size), img, gain)
    bank = noise_banks[int(rng.integers(len(noise_banks)))]
    ox = int(rng.integers(bank.width - width + 1))
    oy = int(rng.integers(bank.height - height + 1))
    noise = bank.crop((ox, oy, ox + width, oy + height))
    return ImageChops.add(img, noise, 1.0, offset - 128)


# ---------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_args(num_ids: Any, images_per_id: Any, captions_per_image: Any,
                image_size: Any, seed: Any) -> Tuple[Tuple[int, int, int],
                                                     Tuple[int, int]]:
    if (not isinstance(num_ids, (tuple, list)) or len(num_ids) != 3
            or not all(_is_int(n) and n >= 0 for n in num_ids)):
        raise ValueError('num_ids must be 3 non-negative ints (train, val, '
                         f'test), got {num_ids!r}')
    if num_ids[0] == 0:
        raise ValueError(f'num_ids must have train > 0, got {num_ids!r}')
    if not _is_int(images_per_id) or images_per_id < 1:
        raise ValueError(
            f'images_per_id must be an int >= 1, got {images_per_id!r}')
    if not _is_int(captions_per_image) or captions_per_image < 1:
        raise ValueError('captions_per_image must be an int >= 1, got '
                         f'{captions_per_image!r}')
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(_is_int(n) for n in image_size)
            or image_size[0] < 32 or image_size[1] < 16):
        raise ValueError('image_size must be (height, width) ints of at '
                         f'least (32, 16), got {image_size!r}')
    if not _is_int(seed) or seed < 0:
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')
    return (tuple(int(n) for n in num_ids),
            (int(image_size[0]), int(image_size[1])))


def _meta(num_ids: Tuple[int, int, int], images_per_id: int,
          captions_per_image: int, image_size: Tuple[int, int],
          seed: int) -> Dict[str, Any]:
    return {
        'format_version': SYNTH_FORMAT_VERSION,
        'num_ids': list(num_ids),
        'images_per_id': int(images_per_id),
        'captions_per_image': int(captions_per_image),
        'image_size': list(image_size),
        'seed': int(seed),
    }


def _dir_is_nonempty(path: str) -> bool:
    if not os.path.lexists(path):
        return False
    if not os.path.isdir(path):
        return True  # a file in the way counts as "something is there"
    with os.scandir(path) as it:
        return any(True for _ in it)


def _rename_into_place(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except OSError:
        # Windows does not rename onto an empty folder: remove it (rmdir
        # fails on a non-empty one, so nothing is lost) and retry once.
        if not os.path.isdir(dst) or _dir_is_nonempty(dst):
            raise
        os.rmdir(dst)
        os.rename(src, dst)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a soft dependency
        return None
    return tqdm(total=total, desc='synth-pedes', unit='img')


def _write_json(path: str, obj: Any) -> None:
    # dumps() uses the C encoder; dump() streams through the slow Python one.
    text = json.dumps(obj, ensure_ascii=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def generate_synth_pedes(out_dir: str,
                         num_ids: tuple = (400, 50, 50),
                         images_per_id: int = 4,
                         captions_per_image: int = 2,
                         image_size: tuple = (192, 64),
                         seed: int = 0,
                         show_progress: bool = True) -> dict:
    """Write a synthetic dataset in the CUHK-PEDES format.

    ``out_dir/reid_raw.json`` holds one record per image::

        {"split": "train", "captions": ["A man with ...", ...],
         "file_path": "train/0001_01.jpg",
         "processed_tokens": [["a", "man", "with", ...], ...], "id": 1}

    with 1-based person ids that are unique over all splits (train ids
    first, then val, then test). Images are JPEGs under ``out_dir/imgs``.
    ``synth_meta.json`` stores the arguments, the format version and the
    statistics (see :func:`synth_meta_matches`), ``synth_attributes.json``
    the attributes of every identity keyed by id.

    The folder is built in a temporary sibling and renamed into place at
    the end, so ``out_dir`` is either absent or complete, and concurrent
    callers cannot mix their files. The output is byte-identical for equal
    arguments.

    Args:
        out_dir (str): Destination folder; must not exist or be empty.
            Parent folders are created.
        num_ids (tuple[int, int, int]): Identities in (train, val, test).
            Defaults to (400, 50, 50).
        images_per_id (int): Images of every identity. Defaults to 4.
        captions_per_image (int): Captions of every image. Defaults to 2.
        image_size (tuple[int, int]): ``(height, width)`` of the images.
            Defaults to (192, 64).
        seed (int): Seed of ``numpy.random.default_rng``. Defaults to 0.
        show_progress (bool): Show a tqdm progress bar over the images.
            Defaults to True.

    Returns:
        dict: ``{split: {'ids': int, 'images': int, 'captions': int}}`` for
        ``'train'``, ``'val'`` and ``'test'``.

    Raises:
        ValueError: If an argument is invalid.
        FileExistsError: If ``out_dir`` exists and is not empty, also when
            another caller created it while this one was generating.
    """
    num_ids, image_size = _check_args(num_ids, images_per_id,
                                      captions_per_image, image_size, seed)
    out_dir = os.path.abspath(os.fspath(out_dir))
    if _dir_is_nonempty(out_dir):
        raise FileExistsError(
            f'refusing to write into non-empty folder {out_dir!r}')
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(out_dir)}.tmp-',
                           dir=parent)
    try:
        stats = _generate_into(tmp, num_ids, images_per_id,
                               captions_per_image, image_size, seed,
                               show_progress)
        # mkdtemp creates 0o700; the dataset is meant to be shared.
        os.chmod(tmp, 0o755)
        try:
            # On POSIX this also replaces an empty out_dir, but fails if
            # another caller has filled it meanwhile.
            _rename_into_place(tmp, out_dir)
        except OSError as e:
            raise FileExistsError(
                f'{out_dir!r} appeared while generating; not overwriting it'
            ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _generate_into(root: str, num_ids: Tuple[int, int, int],
                   images_per_id: int, captions_per_image: int,
                   image_size: Tuple[int, int], seed: int,
                   show_progress: bool) -> Dict[str, Dict[str, int]]:
    rng = np.random.default_rng(seed)
    total_ids = sum(num_ids)
    identities = _sample_identities(rng, total_ids)
    noise_banks = _noise_banks(rng, image_size)
    id_width = max(4, len(str(total_ids)))
    img_width = max(2, len(str(images_per_id)))
    records: List[Dict[str, Any]] = []
    attributes: Dict[str, Dict[str, Any]] = {}
    stats: Dict[str, Dict[str, int]] = {}
    bar = _progress(total_ids * images_per_id, show_progress)
    # JPEG encoding and file creation release the GIL: a writer thread
    # overlaps them with drawing. Rendering itself stays sequential, so the
    # random stream and thus the output do not depend on thread timing.
    writer = ThreadPoolExecutor(max_workers=2)
    pending: Deque[Future] = collections.deque()
    pid = 0
    try:
        for split, count in zip(SPLITS, num_ids):
            os.makedirs(os.path.join(root, IMG_DIR, split), exist_ok=True)
            stats[split] = {
                'ids': count,
                'images': count * images_per_id,
                'captions': count * images_per_id * captions_per_image,
            }
            for _ in range(count):
                ident = identities[pid]
                pid += 1
                attributes[str(pid)] = {'split': split, **ident['attrs']}
                for k in range(1, images_per_id + 1):
                    pose = 'front' if rng.random() < 0.6 else 'back'
                    img = _render_image(rng, ident, image_size, pose,
                                        noise_banks)
                    rel = f'{split}/{pid:0{id_width}d}_{k:0{img_width}d}.jpg'
                    pending.append(
                        writer.submit(img.save, os.path.join(root, IMG_DIR,
                                                             rel),
                                      'JPEG', quality=95, subsampling=0))
                    while len(pending) > 64:  # bound the memory held
                        pending.popleft().result()
                    captions = _make_captions(rng, ident['attrs'], pose,
                                             captions_per_image)
                    records.append({
                        'split': split,
                        'captions': captions,
                        'file_path': rel,
                        'processed_tokens': [tokenize(c) for c in captions],
                        'id': pid,
                    })
                    if bar is not None:
                        bar.update(1)
        while pending:  # re-raises a failed write
            pending.popleft().result()
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    _write_json(os.path.join(root, ANNO_FILE), records)
    _write_json(os.path.join(root, SYNTH_ATTR_FILE), attributes)
    meta = _meta(num_ids, images_per_id, captions_per_image, image_size,
                 seed)
    meta['stats'] = stats
    _write_json(os.path.join(root, SYNTH_META_FILE), meta)
    return stats


def read_synth_meta(out_dir: str) -> Optional[Dict[str, Any]]:
    """Read ``synth_meta.json`` of a generated folder.

    Args:
        out_dir (str): A folder written by :func:`generate_synth_pedes`.

    Returns:
        dict | None: The metadata, or None if the file is missing or not
        valid JSON.
    """
    path = os.path.join(os.fspath(out_dir), SYNTH_META_FILE)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def synth_meta_matches(out_dir: str,
                       num_ids: tuple = (400, 50, 50),
                       images_per_id: int = 4,
                       captions_per_image: int = 2,
                       image_size: tuple = (192, 64),
                       seed: int = 0) -> bool:
    """Whether ``out_dir`` was generated with these arguments.

    Use it to decide whether an existing folder can be reused; the format
    version must match as well.

    Args:
        out_dir (str): Folder to check.
        num_ids, images_per_id, captions_per_image, image_size, seed: The
            arguments of :func:`generate_synth_pedes`.

    Returns:
        bool: True if the stored metadata equals the arguments.
    """
    meta = read_synth_meta(out_dir)
    if meta is None:
        return False
    num_ids, image_size = _check_args(num_ids, images_per_id,
                                      captions_per_image, image_size, seed)
    expected = _meta(num_ids, images_per_id, captions_per_image, image_size,
                     seed)
    return all(meta.get(k) == v for k, v in expected.items())
