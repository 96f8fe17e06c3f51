"""Mixed precision: mmtpr's AutocastOptimWrapper (CPU bfloat16, CUDA
bfloat16 or float16 with loss scaling) and frozen weights stored in half
precision."""
import pytest
import torch
import torch.nn as nn
from conftest import TINY_CLIP, build_runner, tiny_cfg

from mmtpr.engine import AutocastOptimWrapper, resolve_amp_dtype
from mmtpr.registry import MODELS, OPTIM_WRAPPERS

UP_PERSON = [dict(type='ScaledPrefix', length=4), dict(type='KVLoRA', rank=4),
             dict(type='LNAdapter', reduction=8)]
DM_ADAPTER = [dict(type='MixtureOfAdapters', num_experts=4, top_k=2,
                   reduction=8)]


def test_dtype_resolution():
    assert resolve_amp_dtype('auto', 'cpu') == torch.bfloat16
    assert resolve_amp_dtype(None, 'cpu') == torch.bfloat16
    assert resolve_amp_dtype('bf16', 'cpu') == torch.bfloat16
    assert resolve_amp_dtype(torch.float16, 'cuda') == torch.float16
    with pytest.raises(ValueError, match='CPU supports bfloat16 only'):
        resolve_amp_dtype('float16', 'cpu')
    with pytest.raises(ValueError, match="one of .*got 'int8'"):
        resolve_amp_dtype('int8', 'cpu')
    with pytest.raises(ValueError, match='float16 or bfloat16'):
        resolve_amp_dtype(torch.float32, 'cpu')


@pytest.fixture
def on_cpu(monkeypatch):
    """The wrapper as MMEngine builds it on a machine without CUDA (its
    device is MMEngine's get_device(), fixed when MMEngine loads)."""
    import mmtpr.engine.optimizers.autocast_optim_wrapper as module
    monkeypatch.setattr(module, 'get_device', lambda: 'cpu')


def test_cpu_wrapper_from_the_registry_steps_with_autocast(on_cpu):
    """The config name 'AutocastOptimWrapper' resolves to mmtpr's wrapper,
    which works on the CPU (MMEngine's AmpOptimWrapper refuses it):
    bfloat16 autocast, no loss scaler, float32 master weights."""
    assert OPTIM_WRAPPERS.get('AutocastOptimWrapper') is AutocastOptimWrapper
    torch.manual_seed(0)
    model = nn.Linear(8, 4)
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='AutocastOptimWrapper',
             optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    assert wrapper.cast_dtype == torch.bfloat16
    assert wrapper.loss_scaler is None
    reference = nn.Linear(8, 4)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(3, 8)
    with wrapper.optim_context(model):
        out = model(x)
        assert torch.is_autocast_enabled('cpu')
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32
    # the same step by hand: bf16 autocast forward, fp32 SGD update
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ref_out = reference(x)
    ref_out.float().pow(2).mean().backward()
    torch.optim.SGD(reference.parameters(), lr=0.1).step()
    assert torch.equal(model.weight, reference.weight)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    wrapper.load_state_dict(state)


def test_float16_on_cpu_is_refused_clearly(on_cpu):
    with pytest.raises(ValueError, match='CPU supports bfloat16 only'):
        AutocastOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(
            nn.Linear(2, 2).parameters(), lr=0.1))


@pytest.mark.parametrize('bf16_supported, dtype, scaled', [
    (True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_dtype_and_loss_scaler_choice(monkeypatch, bf16_supported,
                                           dtype, scaled):
    """On CUDA, 'auto' is bfloat16 without scaling where the device supports
    it and float16 with a dynamic loss scaler elsewhere (the choice only:
    the CUDA step itself runs in the CUDA-only test below)."""
    import mmtpr.engine.optimizers.autocast_optim_wrapper as module
    monkeypatch.setattr(module, 'get_device', lambda: 'cuda')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported',
                        lambda *a, **k: bf16_supported)
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(
        nn.Linear(2, 2).parameters(), lr=0.1))
    assert (wrapper.device_type, wrapper.cast_dtype) == ('cuda', dtype)
    assert (wrapper.loss_scaler is not None) == scaled
    assert ('loss_scaler' in wrapper.state_dict()) == scaled
    if scaled:
        assert isinstance(wrapper.loss_scaler, torch.amp.GradScaler)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_float16_on_cuda_scales_the_loss():
    model = nn.Linear(8, 4).cuda()
    wrapper = AutocastOptimWrapper(
        dtype='float16',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert wrapper.loss_scaler is not None
    with wrapper.optim_context(model):
        loss = model(torch.randn(3, 8, device='cuda')).float().mean()
    wrapper.update_params(loss)
    assert 'loss_scaler' in wrapper.state_dict()


def stored_in_half(name, param):
    """Which parameters frozen_dtype stores in half: the frozen weight
    matrices, not the embedding tables."""
    return (not param.requires_grad and param.dim() >= 2
            and 'embedding' not in name
            # open_clip reads the text tower's input dtype from this one
            and not name.endswith('clip.transformer.resblocks.0.mlp.c_fc.'
                                  'weight'))


def build_retriever(petl, frozen_dtype=None):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      image_size=(64, 32), petl=petl,
                      frozen_dtype=frozen_dtype),
        head=dict(type='SDMHead')))


@pytest.mark.parametrize('petl', [UP_PERSON, DM_ADAPTER],
                         ids=['up_person', 'dm_adapter'])
def test_frozen_weights_in_bfloat16(petl):
    full = build_retriever(petl)
    half = build_retriever(petl, 'bfloat16')
    half.load_state_dict(full.state_dict())
    named = dict(half.named_parameters())
    frozen = [p for p in named.values() if not p.requires_grad]
    trainable = [p for p in named.values() if p.requires_grad]
    assert frozen and trainable
    assert {p.dtype for p in trainable} == {torch.float32}
    clip = 'backbone.clip.'
    # the weight matrices are half, the rest (the residual stream's
    # inputs: embeddings, norms, biases) float32
    for name in ('visual.conv1.weight', 'visual.proj', 'text_projection',
                 'transformer.resblocks.1.mlp.c_fc.weight',
                 'visual.transformer.resblocks.1.attn.in_proj_weight'):
        assert named[clip + name].dtype == torch.bfloat16, name
    # the text tower's first c_fc weight stays float32: open_clip casts the
    # text input embeddings to its dtype (no method of open_clip patched)
    for name in ('token_embedding.weight', 'positional_embedding',
                 'visual.positional_embedding', 'visual.class_embedding',
                 'ln_final.weight', 'transformer.resblocks.0.mlp.c_fc.bias',
                 'transformer.resblocks.0.mlp.c_fc.weight'):
        assert named[clip + name].dtype == torch.float32, name
    halved = [p for n, p in named.items() if stored_in_half(n, p)]
    assert halved and all(p.dtype == torch.bfloat16 for p in halved)
    half_bytes = sum(p.numel() * p.element_size() for p in frozen)
    full_bytes = sum(p.numel() * p.element_size()
                     for p in full.parameters() if not p.requires_grad)
    assert half_bytes == full_bytes - 2 * sum(p.numel() for p in halved)

    torch.manual_seed(1)
    images = torch.randn(4, 3, 64, 32)
    texts = torch.randint(1, 400, (4, 77))
    texts[:, 12] = 49407
    pids = torch.tensor([0, 0, 1, 1])
    # the same autocast step with float32 weights (what --amp alone does)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss_full = full.head.loss(*full.backbone(images, texts), pids)
        loss_half = half.head.loss(*half.backbone(images, texts), pids)
    loss_full['loss_sdm'].backward()
    loss_half['loss_sdm'].backward()
    # autocast rounds the float32 matrices to bfloat16 for the matmuls, so
    # storing them rounded changes nothing: bit-identical loss and grads
    assert torch.equal(loss_half['loss_sdm'], loss_full['loss_sdm'])
    full_trainable = [p for p in full.parameters() if p.requires_grad]
    for p_half, p_full in zip(trainable, full_trainable):
        if p_full.grad is None:
            assert p_half.grad is None
            continue
        assert p_half.grad.dtype == torch.float32
        assert torch.equal(p_half.grad, p_full.grad)
    # at test time (no autocast around it) the backbone autocasts itself
    with torch.no_grad():
        feats = half.backbone.encode_image(images)
        ref = full.backbone.encode_image(images)
    cos = torch.nn.functional.cosine_similarity(feats.float(), ref, dim=-1)
    assert (cos > 0.99).all()


def test_frozen_dtype_errors():
    with pytest.raises(ValueError, match='needs freeze=True'):
        MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                          freeze=False, frozen_dtype='bfloat16'))
    with pytest.raises(ValueError, match="frozen_dtype must be one of"):
        MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                          frozen_dtype='half'))


@pytest.mark.parametrize('petl, frozen_dtype', [
    (UP_PERSON, 'bfloat16'), (UP_PERSON, None), (DM_ADAPTER, 'bfloat16'),
    (DM_ADAPTER, None)], ids=['up_person_frozen_bf16', 'up_person',
                              'dm_adapter_frozen_bf16', 'dm_adapter'])
def test_runner_trains_and_evaluates_with_amp(tmp_path, petl, frozen_dtype):
    """--amp: the runner trains under autocast (bfloat16 on the CPU) with
    float32 trainable weights, with frozen CLIP weights in bfloat16 or
    float32, on whichever device it runs."""
    cfg = tiny_cfg(tmp_path / 'work', str(tmp_path / 'synth'), max_epochs=1)
    cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    cfg.model.backbone.petl = petl
    cfg.model.backbone.update(freeze=True, frozen_dtype=frozen_dtype)
    runner = build_runner(cfg)
    seen = []
    block = runner.model.backbone.clip.visual.transformer.resblocks[0]
    block.register_forward_hook(
        lambda module, args, out: seen.append(
            (module.training, torch.is_autocast_enabled(out.device.type))))
    runner.train()
    assert isinstance(runner.optim_wrapper, AutocastOptimWrapper)
    assert (True, True) in seen  # training forward under autocast
    if frozen_dtype is not None:  # evaluation: the backbone's own autocast
        assert (False, True) in seen
    for name, param in runner.model.named_parameters():
        half = frozen_dtype is not None and stored_in_half(name, param)
        assert param.dtype == (torch.bfloat16 if half else torch.float32), \
            name
    metrics = runner.val_loop.run()
    assert 0.0 <= metrics['tpr/R1'] <= 100.0
