"""TPRInferencer, tools/retrieve.py and test.py --show-dir on a tiny model
trained on the embedded synthetic data."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from conftest import build_runner, load_tool, tiny_cfg
from mmengine.dataset import pseudo_collate
from PIL import Image

from mmtpr.apis import Gallery, TPRInferencer
from mmtpr.models.petl.checkpoint import petl_state_dict_keys
from mmtpr.utils.checkpoint import load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny CLIP trained (full batch, no augmentation) on 16 synthetic
    persons with one image each, saved as config + checkpoint."""
    root = tmp_path_factory.mktemp('inferencer')
    cfg = tiny_cfg(root / 'work', str(root / 'synth'), max_epochs=1)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(num_ids=[16, 4, 4],
                                                  images_per_id=1)
    cfg.train_dataloader.dataset.pipeline = \
        cfg.test_dataloader.dataset.pipeline
    cfg.model.data_preprocessor.pop('random_erasing', None)
    torch.manual_seed(0)
    runner = build_runner(cfg)
    model = runner.model
    dataset = runner.train_dataloader.dataset
    batch = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(len(dataset))]), True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=2e-3)
    model.train()
    for _ in range(60):
        losses = model(**batch, mode='loss')
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    model.eval()
    checkpoint = str(root / 'trained.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    config = str(root / 'config.py')
    cfg.dump(config)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    images = sorted({info['img_path'] for info in infos})
    return dict(config=config, checkpoint=checkpoint, model=model,
                infos=infos, images=images, root=root, cfg=cfg)


def make_inferencer(trained, tmp_path, checkpoint=None, **kwargs):
    kwargs.setdefault('cache_dir', str(tmp_path / 'cache'))
    return TPRInferencer(trained['config'],
                         checkpoint or trained['checkpoint'],
                         batch_size=5, show_progress=False, **kwargs)


def test_trained_model_ranks_the_paired_image_first(trained, tmp_path):
    inferencer = make_inferencer(trained, tmp_path)
    gallery = inferencer.dataset_gallery('train')
    assert len(gallery) == 16 and sorted(gallery.pids) == list(range(16))
    captions = [info['caption'] for info in trained['infos']]
    paired = [info['img_path'] for info in trained['infos']]
    results = inferencer.search(captions, gallery, topk=3)
    first = [r['paths'][0] for r in results]
    hits = np.mean([f == p for f, p in zip(first, paired)])
    assert hits >= 0.75, hits
    for result in results:
        assert len(result['paths']) == 3
        assert result['scores'] == sorted(result['scores'], reverse=True)
        assert result['pids'] == [gallery.pids[i] for i in
                                  result['indices']]


def test_features_equal_the_model_in_the_runner(trained, tmp_path):
    """The inferencer's features are the model's on the test pipeline."""
    from mmtpr.registry import DATASETS
    cfg = trained['cfg']
    dataset = DATASETS.build(dict(
        cfg.train_dataloader.dataset, test_mode=True,
        pipeline=cfg.test_dataloader.dataset.pipeline))
    items = [dataset[i] for i in range(3)]
    model = trained['model']
    with torch.no_grad():
        ref_img, ref_txt = model(**model.data_preprocessor(
            pseudo_collate(items)), mode='tensor')
    infos = [dataset.get_data_info(i) for i in range(3)]
    captions = [c for info in infos for c in info['captions']]
    inferencer = make_inferencer(trained, tmp_path)
    image_feats = inferencer.encode_images([i['img_path'] for i in infos])
    text_feats = inferencer.encode_texts(captions)
    assert image_feats.shape == (3, 32) and text_feats.shape == (6, 32)
    torch.testing.assert_close(
        image_feats, torch.nn.functional.normalize(ref_img, dim=-1),
        atol=1e-5, rtol=0)
    torch.testing.assert_close(
        text_feats, torch.nn.functional.normalize(ref_txt, dim=-1),
        atol=1e-5, rtol=0)


def copy_images(trained, folder, count=6):
    os.makedirs(folder, exist_ok=True)
    for path in trained['images'][:count]:
        shutil.copy(path, folder)
    return str(folder)


def test_folder_gallery_cache_is_reused_only_when_model_and_images_match(
        trained, tmp_path, monkeypatch):
    folder = copy_images(trained, tmp_path / 'gallery')
    inferencer = make_inferencer(trained, tmp_path)
    calls = []
    original = inferencer._encode_paths

    def counting(paths, *args, **kwargs):
        calls.append(len(paths))
        return original(paths, *args, **kwargs)

    monkeypatch.setattr(inferencer, '_encode_paths', counting)
    first = inferencer.load_gallery(folder)
    assert calls == [6] and first.pids is None
    assert len(os.listdir(tmp_path / 'cache')) == 1
    second = inferencer.load_gallery(folder)
    assert calls == [6]  # reused
    assert torch.equal(first.features, second.features)
    assert second.paths == first.paths == sorted(second.paths)

    # an image changed (other bytes, other size): encoded again
    victim = first.paths[2]
    Image.open(trained['images'][10]).save(victim, quality=50)
    third = inferencer.load_gallery(folder)
    assert calls == [6, 6]
    assert not torch.equal(third.features[2], first.features[2])
    assert torch.equal(third.features[[0, 1, 3, 4, 5]],
                       first.features[[0, 1, 3, 4, 5]])
    inferencer.load_gallery(folder)
    assert calls == [6, 6]
    # an image added: encoded again
    shutil.copy(trained['images'][12], osp.join(folder, 'zz_new.jpg'))
    assert len(inferencer.load_gallery(folder)) == 7
    assert calls == [6, 6, 7]

    # another checkpoint: the cache is not used
    state = load_checkpoint_file(trained['checkpoint'])
    key = next(k for k in state['state_dict'] if 'proj' in k)
    state['state_dict'][key] = state['state_dict'][key] * 1.5
    other_ckpt = str(tmp_path / 'other.pth')
    torch.save(state, other_ckpt)
    other = make_inferencer(trained, tmp_path, checkpoint=other_ckpt)
    assert other.model_id != inferencer.model_id
    other_calls = []
    monkeypatch.setattr(other, '_encode_paths',
                        lambda paths, *a, **k: other_calls.append(1) or
                        (torch.zeros(len(paths), 32), list(paths)))
    other.load_gallery(folder)
    assert other_calls == [1]


def test_no_cache_dir_writes_nothing(trained, tmp_path):
    folder = copy_images(trained, tmp_path / 'gallery', count=3)
    inferencer = make_inferencer(trained, tmp_path, cache_dir='')
    inferencer.load_gallery(folder)
    assert sorted(os.listdir(folder)) == sorted(
        osp.basename(p) for p in trained['images'][:3])
    assert not osp.exists(tmp_path / 'cache')


def test_feature_file_belongs_to_its_model(trained, tmp_path):
    inferencer = make_inferencer(trained, tmp_path)
    gallery = inferencer.dataset_gallery('test')
    path = gallery.save(str(tmp_path / 'feats' / 'test.pth'))
    # the images are not under the file's folder: their root is named
    with pytest.raises(ValueError, match="not inside the file's own folder"):
        inferencer.load_gallery(path)
    loaded = inferencer.load_gallery(path, gallery.root)
    assert isinstance(loaded, Gallery)
    assert torch.equal(loaded.features, gallery.features)
    assert loaded.pids == gallery.pids and loaded.paths == gallery.paths
    results = inferencer.search('a person', loaded, topk=2)
    assert results[0]['pids'] is not None
    # saved in the image folder, it loads by its path alone
    beside = gallery.save(osp.join(gallery.root, 'features.pth'))
    try:
        assert inferencer.load_gallery(beside).paths == gallery.paths
        assert inferencer.search('a person', beside, topk=2)[0]['pids']
    finally:
        os.remove(beside)

    other = TPRInferencer(trained['config'], None, show_progress=False)
    with pytest.raises(ValueError, match='computed by another model'):
        other.load_gallery(path, gallery.root)
    bad = tmp_path / 'bad.pth'
    torch.save({'a': 1}, bad)
    with pytest.raises(ValueError, match='not an mmtpr gallery feature'):
        inferencer.load_gallery(str(bad))


def test_bad_inputs(trained, tmp_path):
    inferencer = make_inferencer(trained, tmp_path)
    with pytest.raises(FileNotFoundError, match='neither a folder nor'):
        inferencer.load_gallery(str(tmp_path / 'nowhere'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(ValueError, match='holds no image'):
        inferencer.load_gallery(str(tmp_path / 'empty'))
    with pytest.raises(ValueError, match='non-empty strings'):
        inferencer.encode_texts(['ok', ' '])
    with pytest.raises(TypeError, match='gallery must be'):
        inferencer.load_gallery(3)


def test_petl_only_checkpoint_loads_over_the_pretrained_clip(trained,
                                                              tmp_path):
    """A PETL-only checkpoint (trainable keys only) gives the features of
    the full model it was taken from."""
    clip = {k[len('backbone.clip.'):]: v
            for k, v in trained['model'].state_dict().items()
            if k.startswith('backbone.clip.')}
    pretrained = str(tmp_path / 'clip.pth')
    torch.save(clip, pretrained)
    options = {'model.backbone.pretrained': pretrained,
               'model.backbone.freeze': True,
               'model.backbone.petl': [dict(type='LNAdapter', reduction=4)]}
    full = TPRInferencer(trained['config'], None, cfg_options=options,
                         show_progress=False, cache_dir='')
    for param in full.model.parameters():
        if param.requires_grad:
            torch.nn.init.normal_(param, std=0.02)
    keys = petl_state_dict_keys(full.model)
    state = full.model.state_dict()
    assert keys and len(keys) < len(state)
    petl_ckpt = str(tmp_path / 'petl.pth')
    torch.save({'state_dict': {k: state[k] for k in keys},
                'meta': dict(petl_only=True, petl_keys=keys)}, petl_ckpt)
    loaded = TPRInferencer(trained['config'], petl_ckpt,
                           cfg_options=options, show_progress=False,
                           cache_dir='')
    paths = trained['images'][:4]
    torch.testing.assert_close(loaded.encode_images(paths),
                               full.encode_images(paths), atol=1e-6,
                               rtol=0)
    other = dict(options)
    other['model.backbone.petl'] = [dict(type='KVLoRA', rank=2)]
    with pytest.raises(ValueError, match='missing|unexpected'):
        TPRInferencer(trained['config'], petl_ckpt, cfg_options=other,
                      show_progress=False, cache_dir='')


def test_faiss_flat_gives_the_exact_top_k(trained, tmp_path):
    pytest.importorskip('faiss')
    inferencer = make_inferencer(trained, tmp_path)
    gallery = inferencer.dataset_gallery('train')
    captions = [info['caption'] for info in trained['infos']]
    exact = inferencer.search(captions, gallery, topk=5)
    flat = inferencer.search(captions, gallery, topk=5, index='faiss-flat')
    assert [r['indices'] for r in flat] == [r['indices'] for r in exact]
    for a, b in zip(flat, exact):
        np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-5)


def test_retrieve_tool_prints_and_draws(trained, tmp_path, capsys):
    folder = copy_images(trained, tmp_path / 'gallery', count=5)
    out = str(tmp_path / 'pics' / 'result.png')
    retrieve = load_tool('retrieve')
    results = retrieve.main([
        trained['config'], trained['checkpoint'], '--gallery', folder,
        '--query', trained['infos'][0]['caption'], '--topk', '4', '--out',
        out, '--cache-dir', str(tmp_path / 'cache')
    ])
    printed = capsys.readouterr().out
    assert f'picture written to {out}' in printed
    assert len(results) == 1 and len(results[0]['paths']) == 4
    for rank, path in enumerate(results[0]['paths']):
        assert f'{rank + 1:4d}  ' in printed and path in printed
    with Image.open(out) as picture:
        # 4 cells of 96 + 2 x 5 frame, 10 px margins
        assert picture.width == 10 + 4 * (106 + 10)
        pixels = np.asarray(picture.convert('RGB'))
    assert pixels.std() > 10  # not blank
    # with a dataset gallery and the query's person id: green/red frames
    out2 = str(tmp_path / 'split.png')
    info = trained['infos'][3]
    results = retrieve.main([
        trained['config'], trained['checkpoint'], '--gallery-split', 'train',
        '--query', info['caption'], '--query-pid', str(info['pid']),
        '--topk', '3', '--out', out2, '--cache-dir', ''
    ])
    with Image.open(out2) as picture:
        pixels = np.asarray(picture.convert('RGB'))
    # the frames' top rows: below them come the cells (288 + 2 x 5), 4 px,
    # two 18 px label lines and the 10 px margin
    frame_row = pixels.shape[0] - 10 - 2 * 18 - 4 - 298 + 2
    for rank, pid in enumerate(results[0]['pids']):
        color = tuple(pixels[frame_row, 10 + rank * 116 + 2])
        assert color == ((0, 170, 0) if pid == info['pid'] else
                         (220, 30, 30)), (rank, color)


def test_test_tool_show_dir_writes_pictures(trained, tmp_path, capsys):
    show = tmp_path / 'show'
    load_tool('test').main([
        trained['config'], trained['checkpoint'], '--show-dir', str(show),
        '--show-num', '3', '--work-dir', str(tmp_path / 'work')
    ])
    assert '3 pictures written' in capsys.readouterr().out
    pictures = sorted(p for p in os.listdir(show) if p.endswith('.png'))
    # 8 captions: the first, the middle and the last
    assert len(pictures) == 3
    assert pictures[0] == 'query_00000.png'
    assert pictures[-1] == 'query_00007.png'
    with Image.open(show / pictures[0]) as picture:
        assert picture.width == 10 + 4 * 116  # test gallery: 4 images
        assert np.asarray(picture).std() > 10
