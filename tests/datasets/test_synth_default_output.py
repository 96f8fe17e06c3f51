"""The default SynthPedes output must not change: refactors of the drawing
and caption code, and new generator options, keep it byte-identical."""
import hashlib
import os

from mmtpr.datasets.synth import generate_synth_pedes

# Enough identities that every garment, bag and hat kind, both genders,
# both hair lengths and both poses occur, at the default image size.
GOLDEN_ARGS = dict(num_ids=(20, 4, 4), images_per_id=2, seed=11)
# Obtained from the unmodified generator (commit 56f015e, before caption
# styles and cameras existed) with numpy 2.3.5 and Pillow 13.0.0, by running
# _output_digest() on generate_synth_pedes(root, **GOLDEN_ARGS,
# show_progress=False). JPEG bytes depend on Pillow's libjpeg: if a Pillow
# upgrade alone changes this value, regenerate it from an unmodified
# checkout with that Pillow and say so in the commit.
GOLDEN_SHA256 = (
    '117aae5ab4ccfe462e8289841da65f45ddb209d4660fa1994a8884f9504f72e3')


def _output_digest(root):
    """sha256 over reid_raw.json, then every image's path and bytes in
    sorted path order."""
    digest = hashlib.sha256()
    with open(os.path.join(root, 'reid_raw.json'), 'rb') as f:
        digest.update(f.read())
    img_dir = os.path.join(root, 'imgs')
    paths = sorted(
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, names in os.walk(img_dir) for name in names)
    for path in paths:
        digest.update(path.replace(os.sep, '/').encode())
        with open(os.path.join(root, path), 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()


def test_default_output_is_byte_identical(tmp_path):
    root = str(tmp_path / 'golden')
    generate_synth_pedes(root, **GOLDEN_ARGS, show_progress=False)
    assert _output_digest(root) == GOLDEN_SHA256
