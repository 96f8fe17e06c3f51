# The recipe shared by IRRA, UP-Person and DM-Adapter (docs/methods.md §0.8, §3):
# Adam with eps 1e-3, coupled L2 weight decay 4e-5 (none on biases),
# 5 warm-up epochs from 0.1x, then cosine to 0 at epoch 60, stepped per epoch.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TPROptimWrapperConstructor',
    optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), eps=1e-3,
                   weight_decay=4e-5),
    # Every parameter whose name contains 'bias' (as in the reference code).
    paramwise_cfg=dict(custom_keys={'bias': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='WarmupCosineLR', warmup_steps=5, warmup_factor=0.1,
         total_steps=60, eta_min_ratio=0.0, by_epoch=True,
         convert_to_iter_based=False),
]
train_cfg = dict(type='TPRTrainLoop', max_epochs=60, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# The reference recipe's batch size: 128 on one GPU.
auto_scale_lr = dict(base_batch_size=128, enable=False)
