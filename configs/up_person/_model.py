# UP-Person on CLIP ViT-B/16 (docs/methods.md §1): frozen CLIP with S-Prefix
# (P=10), KV-LoRA (r=32) and L-Adapter (reduction 8) in all 12 blocks of
# both towers: 7,419,816 trainable parameters. Trained with SDM on masked
# captions; one learning rate for every parameter, no weight decay on
# biases (docs/methods.md §1.5).
_base_ = [
    '../_base_/models/clip_b16_sdm.py',
    '../_base_/schedules/sdm_60e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        freeze=True,
        petl=[
            dict(type='ScaledPrefix', length=10, sp_init=100.0),
            dict(type='KVLoRA', rank=32),
            dict(type='LNAdapter', reduction=8),
        ]))

optim_wrapper = dict(optimizer=dict(lr=1e-3))

# Checkpoints hold only the trainable (PETL) parameters, loaded over the
# frozen pretrained CLIP (docs/checkpoints.md), plus what resume needs.
default_hooks = dict(petl_checkpoint=dict(petl_only=True))
