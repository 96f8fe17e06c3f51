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
sentence templates of one annotator style (``caption_style``); a camera
(``camera``: resolution, colour cast, blur, share of back views) takes the
photos. Both default to the original, 'standard' ones. Attribute values
are shared by many identities while their combination is unique, so a
model can only retrieve the unseen test identities by learning the
attribute words and composing them. This makes the data a fast,
dependency-free smoke test for whole training pipelines: a tiny CLIP
trained from scratch for a few CPU minutes should already reach a test
R@1 far above chance.

The subpackage depends only on numpy, Pillow and MMEngine (its progress
bar) so
that it can be imported without the rest of the package. Its modules:

- :mod:`.attributes`: attribute vocabularies, colours, identity sampling.
- :mod:`.captions`: the caption styles and :func:`tokenize`; one module
  per style (:mod:`.style_standard` with the word tables of
  :mod:`.vocabulary`, :mod:`.style_terse`, :mod:`.style_detailed`) and
  shared helpers in :mod:`.text`.
- :mod:`.pen`, :mod:`.person`, :mod:`.drawing`: rendering of a photo.
- :mod:`.camera`: camera presets and their effect on a photo.
- :mod:`.meta`: file names, format version, metadata, argument checks.
- :mod:`.generator`: :func:`generate_synth_pedes`.
"""
from .camera import CAMERA_PRESETS, resolve_camera
from .captions import CAPTION_STYLES, tokenize
from .generator import generate_synth_pedes
from .meta import (
    SYNTH_ATTR_FILE,
    SYNTH_FORMAT_VERSION,
    SYNTH_META_FILE,
    read_synth_meta,
    synth_meta_diff,
    synth_meta_matches,
    synth_settings,
)

__all__ = ['CAMERA_PRESETS', 'CAPTION_STYLES', 'SYNTH_ATTR_FILE',
           'SYNTH_FORMAT_VERSION', 'SYNTH_META_FILE', 'generate_synth_pedes',
           'read_synth_meta', 'resolve_camera', 'synth_meta_diff',
           'synth_meta_matches', 'synth_settings', 'tokenize']
