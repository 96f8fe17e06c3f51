"""Caption tokenization and masking, and the packed sample layout."""
import os.path as osp

import numpy as np
import pytest

from mmtpr.registry import TRANSFORMS

SOT, EOT, MASK = 49406, 49407, 49405


def tokenize(caption, context_length=77):
    t = TRANSFORMS.build(dict(type='TokenizeCaption',
                              context_length=context_length))
    return t(dict(caption=caption))['text']


def test_tokenize_short_caption():
    tokens = tokenize('A woman in a RED coat.')
    assert tokens.shape == (1, 77) and tokens.dtype == np.int64
    row = tokens[0]
    n = int((row != 0).sum())
    assert row[0] == SOT and row[n - 1] == EOT and (row[n:] == 0).all()
    # CLIP's cleaning lower-cases: same ids as the lower-case text
    assert (tokenize('a woman in a red coat.') == tokens).all()
    assert row.argmax() == n - 1  # EOT is the largest id


def test_tokenize_truncates_and_keeps_eot_last():
    long_caption = ' '.join(['walking'] * 200)
    row = tokenize(long_caption, context_length=16)[0]
    assert row.shape == (16, )
    assert row[0] == SOT and row[-1] == EOT and (row[1:-1] != 0).all()


def test_tokenize_all_captions_of_an_image_and_errors():
    t = TRANSFORMS.build(dict(type='TokenizeCaption'))
    out = t(dict(captions=['a man', 'a man with a bag', 'a hat']))
    assert out['text'].shape == (3, 77)
    with pytest.raises(ValueError, match="empty or non-string caption '' "
                       "for image 'x.jpg'"):
        t(dict(caption='', img_path='x.jpg'))
    with pytest.raises(KeyError, match="needs 'caption' or 'captions'"):
        t(dict(img_path='x.jpg'))


def test_mask_caption_statistics_and_invariants():
    np.random.seed(0)
    masker = TRANSFORMS.build(dict(type='MaskCaption', prob=0.15))
    row = np.zeros(77, dtype=np.int64)
    words = np.arange(1000, 1060)
    row[0], row[1:61], row[61] = SOT, words, EOT
    masked = np.stack([masker.mask(row) for _ in range(4000)])
    # SOT, EOT and padding are never touched
    assert (masked[:, 0] == SOT).all() and (masked[:, 61] == EOT).all()
    assert (masked[:, 62:] == 0).all()
    body = masked[:, 1:61]
    changed_to_mask = (body == MASK).mean()
    replaced = ((body != words) & (body != MASK)).mean()
    # 15 % selected: 80 % -> mask (12 %), 10 % -> random (~1.5 %)
    assert changed_to_mask == pytest.approx(0.12, abs=0.005)
    assert replaced == pytest.approx(0.015, abs=0.003)
    random_ids = body[(body != words) & (body != MASK)]
    assert random_ids.min() >= 1 and random_ids.max() < MASK
    # the input row itself is not modified
    assert (row[1:61] == words).all()


def test_mask_caption_forces_a_mask_when_nothing_was_selected():
    masker = TRANSFORMS.build(dict(type='MaskCaption', prob=0.0))
    row = np.array([SOT, 320, 1929, EOT] + [0] * 4)
    out = masker(dict(text=row[None]))['text']
    assert out.tolist() == [[SOT, MASK, 1929, EOT, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match='split_probs'):
        TRANSFORMS.build(dict(type='MaskCaption', split_probs=(0.5, 0.1,
                                                               0.1)))
    with pytest.raises(KeyError, match='put TokenizeCaption before it'):
        masker(dict(caption='x'))


def test_pack_inputs_layout():
    pack = TRANSFORMS.build(dict(type='PackTPRInputs'))
    img = np.zeros((8, 4, 3), dtype=np.uint8)
    img[..., 0] = 7  # channel 0 (B in BGR)
    out = pack(dict(img=img, text=np.ones((2, 77), dtype=np.int64), pid=3,
                    image_id=5, img_path='a.jpg', person_id=40,
                    captions=['a man', 'a person'], ignored='x'))
    assert tuple(out['inputs'].shape) == (3, 8, 4)
    assert (out['inputs'][0] == 7).all()
    assert tuple(out['texts'].shape) == (2, 77)
    sample = out['data_samples']
    assert (sample.pid, sample.image_id, sample.person_id,
            sample.num_captions) == (3, 5, 40, 2)
    # the captions and the path reach the metric (tools/test.py --out)
    assert sample.captions == ['a man', 'a person']
    assert sample.img_path == 'a.jpg'
    assert 'ignored' not in sample
    # one modality alone: a gallery image, or a query's captions
    alone = pack(dict(img=img, img_path='b.jpg'))
    assert 'texts' not in alone and tuple(alone['inputs'].shape) == (3, 8, 4)
    assert 'num_captions' not in alone['data_samples']
    texts = pack(dict(text=np.ones((1, 77), dtype=np.int64), domain=1))
    assert 'inputs' not in texts and texts['data_samples'].domain == 1
    with pytest.raises(KeyError, match="needs 'img' or 'text'"):
        pack(dict(pid=1))


def test_pillow_backends_resize_as_the_reference(tmp_path):
    """The paper configs decode and resize with Pillow: a shrunk image is
    exactly PIL's bilinear resize (which antialiases; OpenCV's does not),
    in BGR order."""
    from PIL import Image
    rng = np.random.default_rng(0)
    path = str(tmp_path / 'big.png')
    Image.fromarray(rng.integers(0, 255, (400, 150, 3),
                                 dtype=np.uint8)).save(path)
    pipeline = [TRANSFORMS.build(dict(type='LoadPersonImage',
                                      imdecode_backend='pillow')),
                TRANSFORMS.build(dict(type='Resize', scale=(48, 128),
                                      keep_ratio=False,
                                      interpolation='bilinear',
                                      backend='pillow'))]
    results = dict(img_path=path)
    for step in pipeline:
        results = step(results)
    expected = np.asarray(Image.open(path).convert('RGB').resize(
        (48, 128), Image.BILINEAR))[..., ::-1]
    assert results['img'].shape == (128, 48, 3)
    assert np.array_equal(results['img'], expected)
    cv2_like = TRANSFORMS.build(dict(type='Resize', scale=(48, 128),
                                     keep_ratio=False,
                                     interpolation='bilinear'))
    other = cv2_like(dict(img=pipeline[0](dict(img_path=path))['img']))
    assert not np.array_equal(other['img'], expected)


def test_paper_pipelines_use_pillow():
    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'configs', '_base_', 'datasets',
                                   'tpr_pipelines.py'))
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
        assert pipeline[0].imdecode_backend == 'pillow'
        assert pipeline[1].type == 'Resize' and pipeline[1].backend == \
            'pillow'
