# Stage 2 of the embedded default (`python tools/demo.py`): the tiny CLIP
# pre-trained by clip_tiny_synth.py is frozen and adapted with DM-Adapter
# (a sparse mixture of adapters with a domain-aware router beside every MLP,
# SDM + load-balancing loss) to a new domain: other identities, seen by a
# lower-resolution "camera" (96x32 images instead of 192x64).
# tools/demo.py writes the pre-trained weights to
# work_dirs/demo/tiny_clip_pretrained.pth first.
_base_ = ['./clip_tiny_synth.py']

model = dict(
    backbone=dict(
        pretrained='work_dirs/demo/tiny_clip_pretrained.pth',
        freeze=True,
        petl=[
            # The paper's output scales (0.1 visual, 4 text) are tuned for
            # ViT-B/16's widths; the 128-wide tiny CLIP uses 1 for both.
            dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
                 reduction=8, scales=dict(visual=1.0, text=1.0)),
        ]),
    aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5),
)

synth = dict(type='SynthPedes', data_root='data/synth_pedes_lowres',
             num_ids=(400, 50, 50), images_per_id=4, image_size=(96, 32),
             seed=0, generate=True)
train_dataloader = dict(dataset=dict(**synth, split='train'))
val_dataloader = dict(dataset=dict(**synth, split='val'))
test_dataloader = dict(dataset=dict(**synth, split='test'))

max_epochs = 6
optim_wrapper = dict(
    optimizer=dict(lr=3e-3),
    paramwise_cfg=dict(
        custom_keys={'bias': dict(lr_mult=2.0, decay_mult=0.0)}))
param_scheduler = [
    dict(type='WarmupCosineLR', warmup_steps=1, warmup_factor=0.1,
         total_steps=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
