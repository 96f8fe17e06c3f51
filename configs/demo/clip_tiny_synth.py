# Stage 1 of the embedded default (`python tools/demo.py`): a tiny CLIP
# trained from scratch with SDM on a generated SynthPedes dataset of its own
# identities ("pre-training"); stage 2 (up_person_tiny_synth.py,
# dm_adapter_tiny_synth.py) freezes it and adapts it to a new domain. Runs
# on a 2-core CPU in minutes and needs no download.
_base_ = ['../_base_/default_runtime.py']

image_size = (128, 48)  # (height, width)
context_length = 77  # CLIP's; the 'detailed' SynthPedes style needs ~75

# A tiny open_clip model built from a dict (no weights to download).
tiny_clip = dict(
    embed_dim=128,
    vision_cfg=dict(layers=3, width=128, head_width=32, patch_size=16,
                    mlp_ratio=2.0),
    text_cfg=dict(context_length=context_length, vocab_size=49408,
                  width=128, heads=4, layers=3, mlp_ratio=2.0),
)
model = dict(
    type='TPRRetriever',
    backbone=dict(type='OpenCLIPBackbone', model_cfg=tiny_clip,
                  pretrained=None, image_size=image_size, freeze=False),
    # Trained from scratch, the features start nearly identical; a fixed
    # logit scale of 50 (the papers' value for pretrained CLIP) makes the
    # SDM loss collapse to a uniform prediction. Learn it from CLIP's 1/0.07.
    head=dict(type='SDMHead', temperature=0.07, learnable_scale=True),
    data_preprocessor=dict(type='TPRDataPreprocessor', to_rgb=True),
)

# generate=True: written to data_root on first use (and checked on reuse).
synth = dict(type='SynthPedes', data_root='data/synth_pedes_source',
             num_ids=(400, 50, 50), images_per_id=4, image_size=(192, 64),
             seed=1, generate=True)
train_pipeline = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=(image_size[1], image_size[0]),
         keep_ratio=False, interpolation='bilinear'),
    dict(type='RandomCrop', crop_size=image_size, padding=4, pad_val=0),
    dict(type='TokenizeCaption', context_length=context_length),
    dict(type='PackTPRInputs'),
]
test_pipeline = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=(image_size[1], image_size[0]),
         keep_ratio=False, interpolation='bilinear'),
    dict(type='TokenizeCaption', context_length=context_length),
    dict(type='PackTPRInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    # Workers restart every epoch, seeded from the main process's generator
    # (which checkpoints hold): `--resume` continues exactly.
    persistent_workers=False,
    worker_init_fn=dict(type='mmtpr.worker_seed_from_torch'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(**synth, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**synth, split='val', pipeline=test_pipeline),
)
test_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**synth, split='test', pipeline=test_pipeline),
)
val_evaluator = dict(type='TPRMetric')
test_evaluator = val_evaluator

max_epochs = 6
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TPROptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-6,
                   weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'bias': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='WarmupCosineLR', warmup_steps=1, warmup_factor=0.1,
         total_steps=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         convert_to_iter_based=True),
]
train_cfg = dict(type='TPRTrainLoop', max_epochs=max_epochs,
                 val_interval=2)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=2, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
