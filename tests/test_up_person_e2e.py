"""UP-Person end to end on SynthPedes with a tiny frozen CLIP: the loss
falls, only PETL parameters are optimised, frozen CLIP weights are saved
unchanged."""
import os.path as osp

import numpy as np
import torch
from conftest import tiny_cfg
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from mmtpr.models.petl import PETLModule

UP_PERSON = [
    dict(type='ScaledPrefix', length=4),
    dict(type='KVLoRA', rank=4),
    dict(type='LNAdapter', reduction=8),
]


def training_set_loss(runner):
    """SDM loss of the whole training set as one batch, in eval mode."""
    dataset = runner.train_dataloader.dataset
    np.random.seed(0)
    torch.manual_seed(0)
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    model = runner.model
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        return model(**data, mode='loss')['loss_sdm'].item()


def test_up_person_trains_only_petl(tmp_path):
    epochs = 6
    cfg = tiny_cfg(tmp_path / 'up', str(tmp_path / 'synth'),
                   max_epochs=epochs)
    cfg.model.backbone.update(freeze=True, petl=UP_PERSON)
    cfg.model.head = dict(type='SDMHead', temperature=0.02)
    cfg.param_scheduler[0].total_steps = epochs
    cfg.optim_wrapper.optimizer.lr = 1e-2
    cfg.train_cfg.val_interval = epochs
    runner = Runner.from_cfg(cfg)
    model = runner.model
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    before = training_set_loss(runner)
    runner.train()
    after = training_set_loss(runner)
    # a random frozen CLIP carries little to adapt, but the loss falls
    assert after < 0.95 * before

    petl = {p for m in model.modules() if isinstance(m, PETLModule)
            for p in m.parameters()}
    # Adam holds state (moments) exactly for the PETL parameters.
    assert set(runner.optim_wrapper.optimizer.state) == petl

    ckpt = torch.load(osp.join(str(tmp_path / 'up'), f'epoch_{epochs}.pth'),
                      weights_only=True)['state_dict']
    petl_names = {n for n, p in model.named_parameters() if p in petl}
    assert set(ckpt) == set(initial)
    changed = {k for k in ckpt if not torch.equal(ckpt[k], initial[k])}
    assert changed and changed <= petl_names
    # open_clip's own keys are kept
    assert 'backbone.clip.visual.transformer.resblocks.0.attn.' \
        'in_proj_weight' in ckpt
