"""Caption tokenization and BERT-style caption masking."""
from functools import lru_cache
from typing import Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mmtpr.registry import TRANSFORMS


@lru_cache(maxsize=4)
def _tokenizer(context_length: int):
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer(context_length=context_length)


class CaptionTransform(BaseTransform):
    """Base class of the transforms that work on captions only.

    A test pipeline mixes image and caption transforms; whoever needs one
    modality alone (e.g. the inferencer: images for a gallery, captions for
    queries) splits the pipeline by this type.
    """


@TRANSFORMS.register_module()
class TokenizeCaption(CaptionTransform):
    """Tokenize captions with CLIP's BPE tokenizer (open_clip's).

    Each caption becomes ``[SOT] + bpe + [EOT]`` zero-padded to
    ``context_length``; a longer one is truncated and its last token
    overwritten with EOT, so EOT (the largest id) stays the last real
    token. Cleaning is CLIP's: ftfy, HTML unescape, whitespace collapse,
    lower case. Reads ``caption`` (training) or ``captions`` (testing) and
    writes ``text``: an int64 array of shape (N, context_length).

    Args:
        context_length (int): tokens per caption. Defaults to 77.

    Example:
        >>> dict(type='TokenizeCaption', context_length=77)
    """

    def __init__(self, context_length: int = 77) -> None:
        if context_length < 3:
            raise ValueError(
                f'context_length must be >= 3, got {context_length}')
        self.context_length = context_length

    def transform(self, results: dict) -> dict:
        """Tokenize ``results['caption']`` or ``results['captions']``."""
        if 'caption' in results:
            captions = [results['caption']]
        elif 'captions' in results:
            captions = list(results['captions'])
        else:
            raise KeyError("TokenizeCaption needs 'caption' or 'captions' "
                           f'(keys: {sorted(results)})')
        for caption in captions:
            if not isinstance(caption, str) or not caption.strip():
                raise ValueError(
                    f'empty or non-string caption {caption!r} for image '
                    f"'{results.get('img_path')}'")
        tokens = _tokenizer(self.context_length)(captions)
        results['text'] = tokens.numpy().astype(np.int64)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(context_length={self.context_length})'


@TRANSFORMS.register_module()
class MaskCaption(CaptionTransform):
    """BERT-style random masking of caption tokens (docs/methods.md §0.7).

    Both papers train the SDM loss on masked captions. Every word token
    (not padding, SOT, EOT or the mask token itself) is selected with
    probability ``prob``; a selected token becomes ``mask_token_id`` with
    probability 0.8, a uniformly random id in ``random_token_range`` with
    0.1, and stays unchanged with 0.1. If no token of a caption was
    selected, position 1 (its first word) is masked. Draws from numpy's
    global generator, which MMEngine seeds per dataloader worker.

    With open_clip's vocabulary, id 49405 is the last BPE merge, which IRRA's
    tokenizer replaced by ``<|mask|>``; its frozen CLIP embedding acts as
    the mask embedding in both papers.

    Args:
        prob (float): selection probability. Defaults to 0.15.
        mask_token_id (int): Defaults to 49405.
        sot_token_id (int): Defaults to 49406.
        eot_token_id (int): Defaults to 49407.
        pad_token_id (int): Defaults to 0.
        random_token_range (tuple): [low, high) of replacement ids.
            Defaults to (1, 49405).
        split_probs (tuple): probabilities of (mask, random, keep) for a
            selected token. Defaults to (0.8, 0.1, 0.1).

    Example:
        >>> dict(type='MaskCaption', prob=0.15)
    """

    def __init__(self,
                 prob: float = 0.15,
                 mask_token_id: int = 49405,
                 sot_token_id: int = 49406,
                 eot_token_id: int = 49407,
                 pad_token_id: int = 0,
                 random_token_range: Tuple[int, int] = (1, 49405),
                 split_probs: Tuple[float, float, float] = (0.8, 0.1, 0.1)
                 ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if len(split_probs) != 3 or abs(sum(split_probs) - 1.0) > 1e-6 or \
                min(split_probs) < 0:
            raise ValueError('split_probs must be 3 non-negative numbers '
                             f'summing to 1, got {split_probs}')
        if random_token_range[0] >= random_token_range[1]:
            raise ValueError(
                f'random_token_range must be [low, high), got '
                f'{random_token_range}')
        self.prob = prob
        self.mask_token_id = mask_token_id
        self.special = np.array(
            [pad_token_id, sot_token_id, eot_token_id, mask_token_id])
        self.random_token_range = tuple(random_token_range)
        self.split_probs = tuple(split_probs)

    def mask(self, tokens: np.ndarray) -> np.ndarray:
        """Return a masked copy of one (L,) token row."""
        tokens = tokens.copy()
        candidate = ~np.isin(tokens, self.special)
        u = np.random.random(tokens.shape)
        selected = candidate & (u < self.prob)
        if not selected.any():
            if tokens.shape[0] > 1 and candidate[1]:
                tokens[1] = self.mask_token_id
            return tokens
        # Reuse u, rescaled to [0, 1) within the selected tokens, to choose
        # mask / random / keep, as the reference's single draw does.
        v = u / max(self.prob, 1e-12)
        p_mask, p_random, _ = self.split_probs
        to_mask = selected & (v < p_mask)
        to_random = selected & (v >= p_mask) & (v < p_mask + p_random)
        tokens[to_mask] = self.mask_token_id
        tokens[to_random] = np.random.randint(*self.random_token_range,
                                              size=int(to_random.sum()))
        return tokens

    def transform(self, results: dict) -> dict:
        """Mask every row of ``results['text']``."""
        if 'text' not in results:
            raise KeyError('MaskCaption needs tokenized captions; put '
                           'TokenizeCaption before it')
        results['text'] = np.stack([self.mask(row) for row in
                                    np.atleast_2d(results['text'])])
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'
