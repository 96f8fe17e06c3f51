"""OpenCLIPBackbone: building, freezing, features and weight loading."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import TINY_CLIP

from mmtpr.models.backbones.clip_weights import load_clip_state_dict
from mmtpr.models.backbones.open_clip_backbone import OpenCLIPBackbone
from mmtpr.registry import MODELS
from mmtpr.utils.checkpoint import is_torchscript_archive
from mmtpr.utils.errors import CheckpointError, ConfigError


def tiny(**kwargs):
    cfg = dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
               image_size=(64, 32))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_shapes_and_features_match_open_clip_definitions():
    torch.manual_seed(0)
    backbone = tiny()
    clip = backbone.clip
    assert clip.visual.grid_size == (4, 2)
    assert clip.visual.positional_embedding.shape == (4 * 2 + 1, 64)
    images = torch.randn(3, 3, 64, 32)
    texts = torch.zeros(2, 77, dtype=torch.long)
    texts[:, 0] = 49406
    texts[0, 1:4] = torch.tensor([320, 1929, 49407])
    texts[1, 1:6] = torch.tensor([320, 2308, 530, 1774, 49407])
    image_feats, text_feats = backbone(images, texts)
    assert image_feats.shape == (3, 32) and text_feats.shape == (2, 32)
    assert backbone.embed_dim == 32 and backbone.context_length == 77

    # Image feature: CLS token after ln_post and the projection.
    with torch.no_grad():
        tokens = {}
        handle = clip.visual.ln_post.register_forward_hook(
            lambda m, i, o: tokens.setdefault('post', o))
        clip.visual(images)
        handle.remove()
        post = tokens['post']
        cls = post[:, 0] if post.dim() == 3 else post
        assert torch.allclose(image_feats, cls @ clip.visual.proj, atol=1e-5)

        # Text feature: the EOT (largest id) token after ln_final + proj.
        x = clip.token_embedding(texts) + clip.positional_embedding
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
        eot = x[torch.arange(2), texts.argmax(-1)] @ clip.text_projection
        assert torch.allclose(text_feats, eot, atol=1e-5)


def test_freeze_flag_and_logit_scale():
    frozen = tiny(freeze=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    trainable = tiny(freeze=False)
    names = {n for n, p in trainable.named_parameters() if p.requires_grad}
    assert 'clip.visual.conv1.weight' in names
    # CLIP's own temperature is never trained: the SDM head owns it.
    assert 'clip.logit_scale' not in names
    assert len(names) == sum(1 for _ in trainable.parameters()) - 1


def test_text_length_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match='expects 77'):
        tiny().encode_text(torch.zeros(1, 32, dtype=torch.long))


def test_vit_b16_at_384x128_on_meta_device():
    with torch.device('meta'):
        backbone = OpenCLIPBackbone('ViT-B-16', image_size=(384, 128))
    clip = backbone.clip
    assert clip.visual.grid_size == (24, 8)
    assert tuple(clip.visual.positional_embedding.shape) == (193, 768)
    assert tuple(clip.positional_embedding.shape) == (77, 512)
    # methods.md 1.6: vision 86,189,568 + text 63,428,096 = 149,617,664
    # (CLIP's unused logit_scale, 1 more, is not counted there).
    params = dict(backbone.clip.named_parameters())
    vision = sum(p.numel() for n, p in params.items()
                 if n.startswith('visual.'))
    assert vision == 86_189_568
    assert sum(p.numel() for n, p in params.items()
               if n != 'logit_scale') == 149_617_664


def _save_torchscript_archive(clip: nn.Module, path: str,
                              input_resolution: int) -> None:
    """Write an archive shaped like OpenAI's: a scripted module whose state
    dict has CLIP's keys plus input_resolution/context_length/vocab_size."""

    class Archive(nn.Module):

        def __init__(self):
            super().__init__()
            for name, child in clip.named_children():
                self.add_module(name, child)
            for name, param in clip.named_parameters(recurse=False):
                self.register_parameter(name, param)
            self.register_buffer('input_resolution',
                                 torch.tensor(input_resolution))
            self.register_buffer('context_length', torch.tensor(77))
            self.register_buffer('vocab_size', torch.tensor(49408))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    torch.jit.save(torch.jit.script(Archive()), path)


@pytest.mark.filterwarnings('ignore:`torch.jit.*deprecated:FutureWarning')
def test_torchscript_archive_loads_with_quick_gelu_and_resized_pos_embed(
        tmp_path):
    torch.manual_seed(0)
    # "OpenAI" weights at a square 64x64 input: a 4x4 grid.
    source = tiny(image_size=(64, 64), quick_gelu=True).clip
    path = str(tmp_path / 'ViT-tiny.pt')
    _save_torchscript_archive(source, path, input_resolution=64)
    assert is_torchscript_archive(path)
    weights = load_clip_state_dict(path)
    state = weights.state_dict
    assert 'input_resolution' not in state and 'vocab_size' not in state
    assert weights.activation == 'quick_gelu'

    # Load into 128x32 (an 8x2 grid); QuickGELU is chosen automatically.
    backbone = tiny(pretrained=path, image_size=(128, 32))
    act = backbone.clip.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == 'QuickGELU'
    old = source.visual.positional_embedding.detach()
    grid = old[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(8, 2), mode='bilinear',
                             align_corners=False)
    expected = torch.cat(
        [old[:1], expected.permute(0, 2, 3, 1).reshape(16, -1)])
    assert torch.allclose(backbone.clip.visual.positional_embedding,
                          expected, atol=1e-6)
    # Everything else is copied exactly.
    assert torch.equal(backbone.clip.visual.conv1.weight,
                       source.visual.conv1.weight)
    assert torch.equal(backbone.clip.token_embedding.weight,
                       source.token_embedding.weight)


@pytest.mark.parametrize('fmt', ['pth', 'nested', 'safetensors'])
def test_state_dict_files_load(tmp_path, fmt):
    torch.manual_seed(1)
    source = tiny().clip
    state = copy.deepcopy(source.state_dict())
    if fmt == 'safetensors':
        from safetensors.torch import save_file
        path = str(tmp_path / 'clip.safetensors')
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    elif fmt == 'nested':
        path = str(tmp_path / 'clip_nested.pth')
        torch.save({'state_dict': {'module.' + k: v
                                   for k, v in state.items()}}, path)
    else:
        path = str(tmp_path / 'clip.pth')
        torch.save(state, path)
    torch.manual_seed(2)
    backbone = tiny(pretrained=path)
    for key, value in backbone.clip.state_dict().items():
        assert torch.equal(value, state[key]), key
    act = backbone.clip.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == 'GELU'


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = str(tmp_path / 'other.pth')
    cfg = copy.deepcopy(TINY_CLIP)
    cfg['vision_cfg']['layers'] = 3
    torch.save(tiny(model_cfg=cfg).clip.state_dict(), path)
    with pytest.raises(CheckpointError, match='unexpected'):
        tiny(pretrained=path)


def test_missing_weights_file_says_where_to_get_them(tmp_path):
    missing = osp.join(str(tmp_path), 'checkpoints', 'ViT-B-16.pt')
    with pytest.raises(FileNotFoundError) as info:
        tiny(pretrained=missing)
    message = str(info.value)
    assert missing in message
    assert 'get_pretrained_cfg("ViT-B-16", "openai")' in message
    assert 'timm/vit_base_patch16_clip_224.openai' in message


def test_unknown_tag_and_model_are_clear_errors():
    with pytest.raises(ValueError, match="open_clip pretrained tag of "
                       "'ViT-B-16'.*openai"):
        OpenCLIPBackbone('ViT-B-16', pretrained='no-such-tag')
    with pytest.raises(ConfigError,
                       match="unknown open_clip model 'ViT-Nope'"):
        OpenCLIPBackbone('ViT-Nope')


def test_open_clip_tag_is_downloaded_by_open_clip_then_loaded(tmp_path,
                                                              monkeypatch):
    """A tag goes through open_clip's downloader (stubbed: no network in
    tests); 'openai' turns QuickGELU on."""
    import open_clip

    source = tiny(quick_gelu=True).clip
    path = str(tmp_path / 'open_clip_model.safetensors')
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in source.state_dict().items()},
              path)
    asked = {}

    def fake_download(cfg, *args, **kwargs):
        asked.update(cfg)
        return path

    monkeypatch.setattr(open_clip, 'download_pretrained', fake_download)
    backbone = MODELS.build(
        dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
             model_cfg=TINY_CLIP, image_size=(64, 32), pretrained='openai'))
    assert 'openaipublic' in asked['url']
    act = backbone.clip.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == 'QuickGELU'
    assert torch.equal(backbone.clip.visual.conv1.weight,
                       source.visual.conv1.weight)


def _tiny_archive(tmp_path, quick_gelu):
    torch.manual_seed(0)
    source = tiny(image_size=(64, 32), quick_gelu=quick_gelu).clip
    path = str(tmp_path / f'clip_{quick_gelu}.pt')
    _save_torchscript_archive(source, path, input_resolution=64)
    return path


@pytest.mark.filterwarnings('ignore:`torch.jit.*deprecated:FutureWarning')
def test_declared_activation_must_match_the_weights_file(tmp_path):
    """QuickGELU vs GELU moves features by ~1e-2: a declaration that
    contradicts what the weights file says is an error, naming both."""
    quick = _tiny_archive(tmp_path, quick_gelu=True)
    with pytest.raises(ConfigError, match=r'quick_gelu=False declares GELU, '
                       r'but .*was trained with QuickGELU'):
        tiny(pretrained=quick, quick_gelu=False)
    plain = _tiny_archive(tmp_path, quick_gelu=False)
    with pytest.raises(ConfigError, match='declares QuickGELU, but .*GELU'):
        tiny(pretrained=plain, quick_gelu=True)
    act = tiny(pretrained=quick, quick_gelu=True).clip.visual.transformer \
        .resblocks[0].mlp.gelu
    assert type(act).__name__ == 'QuickGELU'
    # the 'openai' tag means QuickGELU too
    with pytest.raises(ConfigError, match="the 'openai' tag"):
        OpenCLIPBackbone('ViT-B-16', model_cfg=TINY_CLIP, pretrained='openai',
                         quick_gelu=False, image_size=(64, 32))


def test_state_dict_files_follow_the_declaration(tmp_path, monkeypatch):
    """A .pth state dict does not say which activation it was trained with:
    the declaration decides; without one, GELU and a warning."""
    path = str(tmp_path / 'clip.pth')
    torch.save(tiny(quick_gelu=True).clip.state_dict(), path)
    act = tiny(pretrained=path, quick_gelu=True).clip.visual.transformer \
        .resblocks[0].mlp.gelu
    assert type(act).__name__ == 'QuickGELU'
    import mmtpr.models.backbones.open_clip_backbone as module
    warnings = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kw: warnings.append(msg))
    act = tiny(pretrained=path).clip.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == 'GELU'
    assert any('does not say which activation' in w for w in warnings)
    # a safetensors file may record it in its metadata
    from safetensors.torch import save_file
    tagged = str(tmp_path / 'clip.safetensors')
    save_file({k: v.contiguous() for k, v in
               tiny(quick_gelu=True).clip.state_dict().items()}, tagged,
              metadata=dict(activation='quick_gelu'))
    act = tiny(pretrained=tagged).clip.visual.transformer.resblocks[0] \
        .mlp.gelu
    assert type(act).__name__ == 'QuickGELU'
    with pytest.raises(ConfigError, match='declares GELU'):
        tiny(pretrained=tagged, quick_gelu=False)


def test_paper_configs_declare_quick_gelu():
    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'configs', '_base_', 'models',
                                   'clip_b16_sdm.py'))
    assert cfg.model.backbone.quick_gelu is True


def test_train_projections_is_the_linear_probe_baseline():
    backbone = tiny(freeze=True, train_projections=True)
    names = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert names == {'clip.visual.proj', 'clip.text_projection'}
