# Runtime shared by every mmtpr config.
default_scope = 'mmtpr'
# mmtpr's runner: checkpoints are read with weights_only=True and strictly,
# resume never runs anything stored in a checkpoint (docs/security.md).
runner_type = 'TPRRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Model selection on the validation split, never on the test split.
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_best='tpr/R1',
        rule='greater',
        # atomic writes, never through a symbolic link (mmtpr.utils.fileio)
        backend_args=dict(backend='mmtpr_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Random states in checkpoints and RNG-neutral validation: `--resume`
    # continues exactly (docs/checkpoints.md). A default hook, so configs
    # with their own `custom_hooks` keep it.
    rng_state=dict(type='RandomStateHook'),
    # Checks PETL-only checkpoints when they are loaded; PETL methods set
    # petl_only=True to save only the trainable parameters.
    petl_checkpoint=dict(type='PETLCheckpointHook', petl_only=False),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='TPRVisualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=1, deterministic=False)
