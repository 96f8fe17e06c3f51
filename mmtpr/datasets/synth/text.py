"""Text helpers shared by the caption styles: tokenization, English list
and article rules, and the :class:`CaptionStyle` record."""
import re
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")

#: The surface forms chosen for one caption: attribute name -> phrase.
Phrases = Dict[str, Optional[str]]


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


def _article(phrase: str) -> str:
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _join(items: Sequence[Optional[str]], sep: str = ', ',
          last: str = ' and ') -> str:
    """Join phrases as an English list: ``a, b and c``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return ''.join(items)
    return sep.join(items[:-1]) + last + items[-1]


class CaptionStyle(NamedTuple):
    """How one annotator writes captions.

    Attributes:
        phrases (callable): ``phrases(rng, attrs, pose) -> dict`` chooses
            the surface form of every attribute for one caption.
        templates (tuple[callable]): Each turns the phrases into a caption.
        min_words (int): Shortest caption kept, in tokens.
        max_words (int): Longest caption kept, in tokens.
        no_bag (callable, optional): ``no_bag(attrs) -> str`` is a sentence
            appended to a quarter of the captions of people without a bag;
            None appends nothing.
    """
    phrases: Callable[[np.random.Generator, Dict[str, Any], str], Phrases]
    templates: Sequence[Callable[[Phrases], str]]
    min_words: int
    max_words: int
    no_bag: Optional[Callable[[Dict[str, Any]], str]] = None
