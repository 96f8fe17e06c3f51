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

The subpackage depends only on numpy, Pillow and (optionally) tqdm so
that it can be imported without the rest of the package. Its modules:

- :mod:`.attributes`: attribute vocabularies, colours, identity sampling.
- :mod:`.vocabulary`: word tables (synonyms) of the captions.
- :mod:`.captions`: caption templates and :func:`tokenize`.
- :mod:`.pen`, :mod:`.person`, :mod:`.drawing`: rendering of a photo.
- :mod:`.meta`: file names, format version, metadata, argument checks.
- :mod:`.generator`: :func:`generate_synth_pedes`.
"""
from .captions import tokenize
from .generator import generate_synth_pedes
from .meta import (
    SYNTH_ATTR_FILE,
    SYNTH_FORMAT_VERSION,
    SYNTH_META_FILE,
    read_synth_meta,
    synth_meta_matches,
)

__all__ = ['SYNTH_ATTR_FILE', 'SYNTH_FORMAT_VERSION', 'SYNTH_META_FILE',
           'generate_synth_pedes', 'read_synth_meta', 'synth_meta_matches',
           'tokenize']
