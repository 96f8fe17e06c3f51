"""The 'standard' caption style: today's SynthPedes annotator.

Full sentences of 15 to 45 words in eight templates that differ in
sentence structure and in the order of the attributes, usually gender and
hair first; synonyms from :mod:`mmtpr.datasets.synth.vocabulary` are drawn
anew for every caption.
"""
from typing import Any, Callable, Dict, Tuple

import numpy as np

from .attributes import _choice
from .text import CaptionStyle, Phrases, _article, _cap, _join
from .vocabulary import (
    _BAG_IS,
    _BAG_NP,
    _HAT_NP,
    _LOWER_WORDS,
    _NOUNS,
    _POSE_WORDS,
    _PRONOUNS,
    _SHOE_WORDS,
    _UPPER_WORDS,
)


def _caption_phrases(rng: np.random.Generator, attrs: Dict[str, Any],
                     pose: str) -> Phrases:
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


def _extras(p: Phrases) -> str:
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


CAPTION_TEMPLATES: Tuple[Callable[[Phrases], str], ...] = (
    _t_with_hair_first, _t_this_person, _t_garments_first, _t_pose,
    _t_picture_list, _t_dressed_fragment, _t_colour_after,
    _t_participle_first)


def _no_bag(attrs: Dict[str, Any]) -> str:
    # Negative statements appear in real annotations too.
    return f" {_cap(_PRONOUNS[attrs['gender']][0])} carries no bag."


STANDARD = CaptionStyle(_caption_phrases, CAPTION_TEMPLATES, 15, 45,
                        _no_bag)
