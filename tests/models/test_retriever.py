"""TPRRetriever modes and the data preprocessor."""
import pytest
import torch
from conftest import TINY_CLIP
from mmengine.structures import BaseDataElement

from mmtpr.models.data_preprocessors import (
    CLIP_MEAN,
    CLIP_STD,
    RandomErasingNormalized,
)
from mmtpr.registry import MODELS


def build_model(**backbone):
    return MODELS.build(
        dict(type='TPRRetriever',
             backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                           image_size=(64, 32), freeze=False, **backbone),
             head=dict(type='SDMHead')))


def batch(num_captions):
    torch.manual_seed(0)
    images = [torch.randint(0, 256, (3, 64, 32), dtype=torch.uint8)
              for _ in num_captions]
    texts = []
    for n in num_captions:
        t = torch.zeros(n, 77, dtype=torch.long)
        t[:, 0] = 49406
        t[:, 1:4] = torch.randint(300, 2000, (n, 3))
        t[:, 4] = 49407
        texts.append(t)
    samples = [BaseDataElement(metainfo=dict(pid=i // 2))
               for i in range(len(num_captions))]
    return dict(inputs=images, texts=texts, data_samples=samples)


def test_preprocessor_normalises_converts_bgr_and_counts_captions():
    pre = MODELS.build(dict(type='TPRDataPreprocessor'))
    data = batch([1, 3])
    out = pre(data, training=False)
    assert out['text_counts'] == [1, 3]
    assert tuple(out['texts'].shape) == (4, 77)
    bgr = data['inputs'][1].float()
    r = (bgr[2] - CLIP_MEAN[0]) / CLIP_STD[0]
    assert torch.allclose(out['images'][1, 0], r)
    # a gallery batch has images only, a query batch captions only
    images_only = pre(dict(inputs=data['inputs']))
    assert images_only['texts'] is None and torch.equal(
        images_only['images'], out['images'])
    with pytest.raises(KeyError, match='neither inputs nor texts'):
        pre(dict(data_samples=[]))


def test_random_erasing_fills_a_box_with_the_value_after_normalisation():
    torch.manual_seed(3)
    erase = RandomErasingNormalized(prob=1.0, value=(1.5, 2.5, 3.5))
    images = torch.zeros(4, 3, 40, 20)
    out = erase(images.clone())
    for img in out:
        box = img[0] == 1.5
        area = box.float().mean().item()
        assert 0.0 < area <= 0.4 + 1e-6
        assert (img[1][box] == 2.5).all() and (img[2][box] == 3.5).all()
        rows, cols = box.any(1).nonzero(), box.any(0).nonzero()
        # a solid rectangle
        assert box.sum() == len(rows) * len(cols)
    assert torch.equal(RandomErasingNormalized(prob=0.0)(images.clone()),
                       images)


def test_loss_predict_tensor_modes():
    model = build_model()
    data = model.data_preprocessor(batch([1, 1, 1, 1]), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_sdm'} and losses['loss_sdm'].item() > 0
    losses['loss_sdm'].backward()
    assert model.backbone.clip.visual.conv1.weight.grad is not None

    model.eval()
    data = model.data_preprocessor(batch([2, 1, 3]), training=False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
        image_feats, text_feats = model(**data, mode='tensor')
    assert [tuple(s.text_feats.shape) for s in samples] == [(2, 32), (1, 32),
                                                            (3, 32)]
    assert torch.allclose(samples[2].image_feat, image_feats[2])
    assert torch.allclose(samples[2].text_feats, text_feats[3:6])
    assert samples[1].pid == 0
    with pytest.raises(ValueError, match="invalid mode 'train'"):
        model(**data, mode='train')


def test_loss_rejects_test_layout():
    model = build_model()
    data = model.data_preprocessor(batch([2, 1]), training=True)
    with pytest.raises(ValueError, match='exactly one caption per image'):
        model(**data, mode='loss')
