"""The 'terse' caption style: keyword lists and short clauses.

An annotator in a hurry: 8 to 24 words, no articles, ``male`` /
``female`` instead of nouns with pronouns, British ``grey``, clipped
garment words (``tshirt``, ``hoody``, ``knitwear``, ``tote``,
``satchel``, ``footwear``), and an attribute order that often starts from
the shoes and the bag and ends with the gender.
"""
from typing import Any, Callable, Dict, Tuple

import numpy as np

from .attributes import _choice
from .text import CaptionStyle, Phrases, _cap, _join

_NOUNS = {
    'man': ('male', 'man', 'guy', 'male adult'),
    'woman': ('female', 'woman', 'girl', 'female adult'),
}
# Only 'gray' is spelled differently; every other colour keeps its name.
_COLORS = {'gray': 'grey'}
_UPPER = {
    't-shirt': ('tee', 'tshirt'),
    'shirt': ('shirt', 'longsleeve shirt'),
    'jacket': ('jacket', 'bomber jacket'),
    'coat': ('coat', 'long coat'),
    'sweater': ('jumper', 'knitwear'),
    'hoodie': ('hoodie', 'hoody'),
}
_LOWER = {
    'trousers': ('pants', 'long pants'),
    'jeans': ('jeans', 'denim'),
    'shorts': ('shorts', ),
    'skirt': ('skirt', 'miniskirt'),
}
_SHOES = ('shoes', 'footwear')
_BAGS = {
    'backpack': ('backpack', ),
    'handbag': ('handbag', 'tote'),
    'shoulder bag': ('sling bag', 'satchel'),
}
_HATS = {'cap': ('cap', 'ballcap'), 'hat': ('hat', )}


def _color(name: str) -> str:
    return _COLORS.get(name, name)


def _phrases(rng: np.random.Generator, attrs: Dict[str, Any],
             pose: str) -> Phrases:
    """Noun phrases without articles, e.g. ``red tee``; ``pose`` is not
    mentioned."""
    bag = hat = None
    if attrs['bag'] != 'none':
        bag = (f"{_color(attrs['bag_color'])} "
               f"{_choice(rng, _BAGS[attrs['bag']])}")
    if attrs['hat'] != 'none':
        hat = (f"{_color(attrs['hat_color'])} "
               f"{_choice(rng, _HATS[attrs['hat']])}")
    return {
        'noun': _choice(rng, _NOUNS[attrs['gender']]),
        'hair': (f"{attrs['hair_length']} {_color(attrs['hair_color'])} "
                 'hair'),
        'upper': (f"{_color(attrs['upper_color'])} "
                  f"{_choice(rng, _UPPER[attrs['upper']])}"),
        'lower': (f"{_color(attrs['lower_color'])} "
                  f"{_choice(rng, _LOWER[attrs['lower']])}"),
        'shoes': f"{_color(attrs['shoes_color'])} {_choice(rng, _SHOES)}",
        'bag': bag,
        'hat': hat,
    }


def _list(items) -> str:
    return _cap(_join(items, last=', ')) + '.'


# Templates: a keyword list in either order, short clauses, and one
# telegraphic sentence.
def _t_keywords(p):
    return _list([p['noun'], p['hair'], p['upper'], p['lower'], p['shoes'],
                  p['bag'], p['hat']])


def _t_feet_first(p):
    return _list([p['shoes'], p['bag'], p['lower'], p['upper'], p['hat'],
                  p['hair'], p['noun']])


def _t_clauses(p):
    parts = [p['noun'], p['hair'], f"{p['upper']}, {p['lower']}",
             p['shoes'], p['bag'], p['hat']]
    return ' '.join(_cap(x) + '.' for x in parts if x)


def _t_in(p):
    text = (f"{_cap(p['noun'])} in {p['upper']} and {p['lower']}, "
            f"{p['shoes']}; {p['hair']}")
    if p['bag']:
        text += f"; carries {p['bag']}"
    if p['hat']:
        text += f"; {p['hat']}"
    return text + '.'


def _t_outfit_last_noun(p):
    text = f"{_cap(p['upper'])} over {p['lower']}, {p['shoes']}. "
    text += _cap(_join([p['hair'], p['hat']], last=', ')) + '.'
    if p['bag']:
        text += f" {_cap(p['bag'])}."
    return text + f" {_cap(p['noun'])}."


TEMPLATES: Tuple[Callable[[Phrases], str], ...] = (
    _t_keywords, _t_feet_first, _t_clauses, _t_in, _t_outfit_last_noun)


def _no_bag(attrs: Dict[str, Any]) -> str:
    return ' No bag.'


TERSE = CaptionStyle(_phrases, TEMPLATES, 8, 24, _no_bag)
