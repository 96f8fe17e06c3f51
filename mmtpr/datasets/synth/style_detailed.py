"""The 'detailed' caption style: long, careful descriptions.

An annotator paid by the word: 28 to 55 words that name the view point
and the garment details the drawing shows (buttons, hems, the hood), with
other garment and colour words than the standard style (``crimson``,
``cobalt``, ``trainers``, ``chinos``, ``windbreaker``). The description
starts from the feet, the bag or the outfit and names the gender last;
no pronoun gives it away earlier.
"""
from typing import Any, Callable, Dict, Tuple

import numpy as np

from .attributes import _choice
from .text import CaptionStyle, Phrases, _article, _cap, _join

_NOUNS = {
    'man': ('man', 'young man', 'gentleman', 'male pedestrian'),
    'woman': ('woman', 'young woman', 'lady', 'female pedestrian'),
}
# Several names per colour; the last word of each names one colour only.
_COLORS = {
    'red': ('red', 'bright red', 'crimson', 'scarlet'),
    'blue': ('blue', 'royal blue', 'cobalt'),
    'green': ('green', 'emerald', 'grass green'),
    'yellow': ('yellow', 'bright yellow', 'mustard'),
    'black': ('black', 'jet black'),
    'white': ('white', 'off-white', 'snow white'),
    'gray': ('grey', 'mid grey', 'ash grey'),
    'purple': ('purple', 'violet', 'deep purple'),
    'orange': ('orange', 'bright orange', 'tangerine'),
    'pink': ('pink', 'light pink', 'bubblegum pink'),
    'brown': ('brown', 'chocolate', 'dark brown'),
}
_HAIR_COLORS = {
    'black': ('black', 'jet black'),
    'brown': ('brown', 'chestnut'),
    'blond': ('blonde', 'fair'),
    'gray': ('grey', 'silver'),
}
_HAIR_DETAIL = {
    'short': ('', 'cut above the ears', 'neatly trimmed'),
    'long': ('', 'falling past the shoulders', 'reaching below the chin'),
}
_UPPER = {
    't-shirt': ('t-shirt', 'crew-neck tee'),
    'shirt': ('shirt', 'dress shirt', 'button-down shirt'),
    'jacket': ('jacket', 'zip jacket', 'windbreaker'),
    'coat': ('coat', 'overcoat', 'trench coat'),
    'sweater': ('sweater', 'knit sweater', 'pullover'),
    'hoodie': ('hoodie', 'hooded sweatshirt'),
}
# (visible from both sides, visible from the front only)
_UPPER_DETAIL = {
    't-shirt': (('with short sleeves', 'that leaves the forearms bare'),
                ('with a round neckline', )),
    'shirt': (('with long sleeves', 'with darker cuffs'),
              ('buttoned all the way down', 'with a pointed collar')),
    'jacket': (('with long sleeves', ),
               ('zipped up the front', 'with a stand-up collar')),
    'coat': (('that reaches down to the knees', 'cut long below the hips'),
             ('with two rows of buttons', )),
    'sweater': (('with ribbed cuffs and hem', 'in a ribbed knit'),
                ('with a round neck', )),
    'hoodie': (('with the hood down', ),
               ('with a front pocket', 'with drawstrings at the neck')),
}
# (word, is_plural)
_LOWER = {
    'trousers': (('trousers', True), ('chinos', True),
                 ('full-length trousers', True)),
    'jeans': (('jeans', True), ('denims', True), ('denim jeans', True)),
    'shorts': (('shorts', True), ('bermuda shorts', True)),
    'skirt': (('skirt', False), ('a-line skirt', False)),
}
_LOWER_DETAIL = {
    'trousers': ('', 'that reach the ankles', 'with a crease down each leg'),
    'jeans': ('', 'with light outer seams', 'with turned-up hems'),
    'shorts': ('', 'that end above the knees', 'that show bare legs'),
    'skirt': ('', 'that ends above the knees', 'flaring out from the waist'),
}
_SHOES = ('trainers', 'shoes', 'sneakers', 'flat shoes')
_BAGS = {
    'backpack': ('{ac} backpack on both shoulders',
                 '{ac} rucksack worn on the back'),
    'handbag': ('{ac} handbag held in one hand',
                '{ac} purse hanging from one hand'),
    'shoulder bag': ('{ac} shoulder bag on a long strap',
                     '{ac} messenger bag worn across the body',
                     '{ac} crossbody bag resting on one hip'),
}
_NO_BAG = ('carries no bag', 'has both hands free')
_HATS = {
    'cap': ('{ac} baseball cap', '{ac} peaked cap'),
    'hat': ('{ac} wide-brimmed hat', '{ac} sun hat'),
}
_VIEWS = {
    'front': ('Photographed from the front', 'Facing the camera',
              'Walking towards the camera'),
    'back': ('Photographed from behind', 'Walking away from the camera',
             'Seen from the rear'),
}
_VIEWS_AFTER = {
    'front': ('from the front', 'head-on'),
    'back': ('from behind', 'from the rear'),
}


def _color(rng: np.random.Generator, name: str) -> str:
    return _choice(rng, _COLORS[name])


def _with_detail(phrase: str, detail: str) -> str:
    return f'{phrase} {detail}' if detail else phrase


def _garments(rng: np.random.Generator, attrs: Dict[str, Any],
              pose: str) -> Phrases:
    upper_word = _choice(rng, _UPPER[attrs['upper']])
    both, front_only = _UPPER_DETAIL[attrs['upper']]
    upper_detail = _choice(rng, both + front_only if pose == 'front'
                           else both)
    upper_col = _color(rng, attrs['upper_color'])
    lower_word, plural = _choice(rng, _LOWER[attrs['lower']])
    lower = f"{_color(rng, attrs['lower_color'])} {lower_word}"
    lower = ('a pair of ' + lower) if plural and rng.random() < 0.3 else (
        lower if plural else _article(lower))
    shoes = f"{_color(rng, attrs['shoes_color'])} {_choice(rng, _SHOES)}"
    if rng.random() < 0.3:
        shoes = 'a pair of ' + shoes
    return {
        'upper': _with_detail(_article(f'{upper_col} {upper_word}'),
                              upper_detail),
        'upper_in': _with_detail(f'{_article(upper_word)} in {upper_col}',
                                 upper_detail),
        'lower': _with_detail(
            lower, _choice(rng, _LOWER_DETAIL[attrs['lower']])),
        'shoes': shoes,
    }


def _phrases(rng: np.random.Generator, attrs: Dict[str, Any],
             pose: str) -> Phrases:
    """Long noun phrases with details; ``view`` names the pose."""
    p = _garments(rng, attrs, pose)
    length = attrs['hair_length']
    hair = (f"{length} {_choice(rng, _HAIR_COLORS[attrs['hair_color']])} "
            'hair')
    p['hair'] = _with_detail(hair, _choice(rng, _HAIR_DETAIL[length]))
    p['bag'] = p['hat'] = None
    if attrs['bag'] != 'none':
        p['bag'] = _choice(rng, _BAGS[attrs['bag']]).format(
            ac=_article(_color(rng, attrs['bag_color'])))
    if attrs['hat'] != 'none':
        p['hat'] = _choice(rng, _HATS[attrs['hat']]).format(
            ac=_article(_color(rng, attrs['hat_color'])))
    p['no_bag'] = _choice(rng, _NO_BAG)
    p['view'] = _choice(rng, _VIEWS[pose])
    p['view_after'] = _choice(rng, _VIEWS_AFTER[pose])
    p['noun'] = _article(_choice(rng, _NOUNS[attrs['gender']]))
    return p


def _hat(p: Phrases) -> str:
    return f" {_cap(p['hat'])} covers the head." if p['hat'] else ''


# Templates: every one names the gender in its last sentence.
def _t_feet_up(p):
    carries = f"carries {p['bag']}" if p['bag'] else p['no_bag']
    return (f"{p['view']}, this pedestrian wears {p['shoes']} and "
            f"{carries}. The outfit is {p['upper']} with {p['lower']}."
            f"{_hat(p)} With {p['hair']}, this is {p['noun']}.")


def _t_from_the_feet(p):
    bag = f" Also {p['bag']}." if p['bag'] else ''
    head = (f"{p['hat']} over {p['hair']}" if p['hat'] else
            f"{p['hair']} and nothing on the head")
    return (f"From the feet up: {p['shoes']}, {p['lower']} and "
            f"{p['upper']}.{bag} {_cap(head)}. {p['view']}, this is "
            f"{p['noun']}.")


def _t_bag_first(p):
    first = (f"First, {p['bag']}." if p['bag'] else
             f"The pedestrian {p['no_bag']}.")
    return (f"{first} Then {p['upper']}, {p['lower']} and {p['shoes']}; "
            f"{p['hair']}.{_hat(p)} Taken {p['view_after']}, the picture "
            f"shows {p['noun']}.")


def _t_colour_after(p):
    extras = _join([p['bag'], p['hat']])
    text = (f"{p['view']}, the person wears {p['upper_in']}, with "
            f"{p['lower']} and {p['shoes']}.")
    if extras:
        text += f" Also visible: {extras}."
    return text + f" With {p['hair']}, the person looks like {p['noun']}."


TEMPLATES: Tuple[Callable[[Phrases], str], ...] = (
    _t_feet_up, _t_from_the_feet, _t_bag_first, _t_colour_after)

# The templates state a missing bag themselves (or not): no extra sentence.
DETAILED = CaptionStyle(_phrases, TEMPLATES, 28, 55)
