"""Captions of the synthetic dataset, in one of several annotator styles.

Real TPR datasets differ in how their annotators write as much as in their
cameras: CUHK-PEDES captions average 23 words, ICFG-PEDES captions 37,
with other vocabulary and word order. A caption style imitates one such
annotator; every style names every attribute of the identity, so the
attributes stay recoverable from any caption. The styles
(``CAPTION_STYLES``):

- ``'standard'`` (:mod:`.style_standard`): full sentences of 15 to 45
  words, gender and hair usually first. The default, and the only style of
  SynthPedes before styles existed.
- ``'terse'`` (:mod:`.style_terse`): keyword lists and short clauses of 8
  to 24 words without articles, ``male`` / ``female``, British ``grey``,
  often shoes and bag first and gender last.
- ``'detailed'`` (:mod:`.style_detailed`): long descriptions of 28 to 55
  words that name the view point and visible garment details (buttons,
  hems, hood), other garment and colour words (``crimson``, ``cobalt``,
  ``trainers``, ``chinos``), and start from the feet or the bag and name
  the gender last. About 60 CLIP BPE tokens on average: all fit CLIP's
  context length of 77, but a fifth exceed 64 (the demo configs' value),
  where truncation would cut off the gender.
"""
from typing import Any, Dict, List, Optional

import numpy as np

from .style_detailed import DETAILED
from .style_standard import CAPTION_TEMPLATES, STANDARD
from .style_terse import TERSE
from .text import CaptionStyle, tokenize

CAPTION_STYLES: Dict[str, CaptionStyle] = {
    'standard': STANDARD,
    'terse': TERSE,
    'detailed': DETAILED,
}

__all__ = ['CAPTION_STYLES', 'CAPTION_TEMPLATES', 'tokenize']


def _check_caption_style(caption_style: Any) -> str:
    if not isinstance(caption_style, str) or (caption_style
                                              not in CAPTION_STYLES):
        raise ValueError(f'caption_style must be one of '
                         f'{sorted(CAPTION_STYLES)}, got {caption_style!r}')
    return caption_style


def _make_captions(rng: np.random.Generator, attrs: Dict[str, Any],
                   pose: str, num: int,
                   style: str = 'standard') -> List[str]:
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
        style (str): A key of ``CAPTION_STYLES``. Defaults to 'standard'.

    Returns:
        list[str]: Captions whose lengths lie in the style's word range
        (15 to 45 words for 'standard').
    """
    spec = CAPTION_STYLES[style]
    templates = spec.templates
    captions: List[str] = []
    fallback: Optional[str] = None
    order: List[int] = []
    for _ in range(num * 20):
        if len(captions) == num:
            break
        if not order:
            order = [int(i) for i in rng.permutation(len(templates))]
        template = templates[order.pop()]
        text = template(spec.phrases(rng, attrs, pose))
        if (spec.no_bag is not None and attrs['bag'] == 'none'
                and rng.random() < 0.25):
            text += spec.no_bag(attrs)
        if text in captions:
            continue
        if spec.min_words <= len(tokenize(text)) <= spec.max_words:
            captions.append(text)
        elif fallback is None:
            fallback = text
    while len(captions) < num:  # pragma: no cover - templates always fit
        captions.append(fallback or captions[-1])
    return captions
