# DM-Adapter on CLIP ViT-B/16 (docs/methods.md §2): frozen CLIP with a sparse
# mixture of 6 adapters (top-2, reduction 8) and a domain-aware router beside
# the MLP of all 12 blocks of both towers (output scale 0.1 visual, 4 text):
# 15,669,528 trainable parameters. SDM + 0.5 x load-balancing loss.
_base_ = [
    '../_base_/models/clip_b16_sdm.py',
    '../_base_/schedules/sdm_60e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        freeze=True,
        petl=[
            dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
                 reduction=8, scales=dict(visual=0.1, text=4.0),
                 num_domains=1, alpha_init=0.5,
                 # the reference counts text padding in the balance term
                 count_padding=True),
        ]),
    aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5),
)

# lr 3e-4; every parameter whose name contains 'bias' (expert biases, LN3
# bias) at 2x lr without weight decay (docs/methods.md §2.5).
optim_wrapper = dict(
    optimizer=dict(lr=3e-4),
    paramwise_cfg=dict(
        custom_keys={'bias': dict(lr_mult=2.0, decay_mult=0.0)}))

custom_hooks = [dict(type='LoadBalanceLossHook', interval=50)]

# Checkpoints hold only the trainable (PETL) parameters, loaded over the
# frozen pretrained CLIP (docs/checkpoints.md), plus what resume needs.
default_hooks = dict(petl_checkpoint=dict(petl_only=True))
