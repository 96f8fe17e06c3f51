"""The tiny config of the resume tests: a frozen tiny CLIP with
UP-Person's three PETL techniques and every random augmentation of the
papers (flip, crop, caption masking, random erasing)."""
from conftest import tiny_cfg

UP_PERSON = [
    dict(type='ScaledPrefix', length=4),
    dict(type='KVLoRA', rank=4),
    dict(type='LNAdapter', reduction=8),
]


def resume_cfg(work_dir, data_root, max_epochs=2, petl=UP_PERSON,
               petl_only=True, **extra):
    """``tiny_cfg`` with PETL, PETL-only checkpoints and random
    augmentations in the pipeline and the data preprocessor."""
    cfg = tiny_cfg(work_dir, data_root, max_epochs=max_epochs, **extra)
    cfg.model.backbone.update(freeze=True, petl=petl)
    cfg.model.data_preprocessor.random_erasing = dict(
        prob=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.3),
        value=(0.0, 0.0, 0.0))
    pipeline = cfg.train_dataloader.dataset.pipeline
    crop = next(i for i, t in enumerate(pipeline)
                if t['type'] == 'RandomCrop')
    pipeline.insert(crop, dict(type='RandomFlip', prob=0.5,
                               direction='horizontal'))
    tokenize = next(i for i, t in enumerate(pipeline)
                    if t['type'] == 'TokenizeCaption')
    pipeline.insert(tokenize + 1, dict(type='MaskCaption', prob=0.15))
    cfg.default_hooks.petl_checkpoint.petl_only = petl_only
    return cfg
