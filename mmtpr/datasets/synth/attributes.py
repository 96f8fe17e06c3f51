"""Attribute vocabularies, colours and sampling of synthetic identities.

Every identity is a set of clearly visible attributes (gender, hair, upper
and lower garment with their colours, shoes, bag, hat) plus nuisance
factors that no caption mentions (exact shades, skin tone, build, side of
the shoulder bag). Values are shared by many identities while their
combination is unique.
"""
import bisect
import itertools
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

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
