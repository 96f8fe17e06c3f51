# Full fine-tuning of CLIP ViT-B/16 with SDM on CUHK-PEDES: the plain CLIP
# baseline that the PETL methods are compared against (IRRA's "CLIP" row:
# batch 64, lr 1e-5, biases at 2x lr without weight decay).
_base_ = [
    '../_base_/models/clip_b16_sdm.py',
    '../_base_/datasets/cuhk_pedes.py',
    '../_base_/schedules/sdm_60e.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(freeze=False))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(
    optimizer=dict(lr=1e-5),
    paramwise_cfg=dict(
        custom_keys={'bias': dict(lr_mult=2.0, decay_mult=0.0)}))
