# CUHK-PEDES: data/CUHK-PEDES/{reid_raw.json, imgs/}.
_base_ = ['./tpr_pipelines.py']

dataset_type = 'CUHKPEDES'
data_root = 'data/CUHK-PEDES'

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    # Workers restart every epoch, seeded from the main process's generator
    # (which checkpoints hold): augmentations differ between epochs and
    # `--resume` continues exactly (docs/checkpoints.md).
    persistent_workers=False,
    worker_init_fn=dict(type='mmtpr.worker_seed_from_torch'),
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline={{_base_.train_pipeline}}),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline={{_base_.test_pipeline}}),
)
test_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline={{_base_.test_pipeline}}),
)
val_evaluator = dict(type='TPRMetric')
test_evaluator = val_evaluator
