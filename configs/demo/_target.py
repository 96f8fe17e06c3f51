# The target domain of stage 2 (`python tools/demo.py`,
# benchmarks/methods_synth.py): other identities, described by annotators of
# another style and seen by another camera than the pre-training data:
# - captions 'terse' (keyword lists and short clauses, other synonyms:
#   "hoody", "tote", "ballcap", British "grey"; shoes and bag first, gender
#   last) instead of 'standard' sentences;
# - camera 'cctv' (half resolution, a cold colour cast, blur, 60 % back
#   views) instead of 'standard'.
# The CLIP pre-trained by clip_tiny_synth.py (tools/demo.py writes it to
# work_dirs/demo/tiny_clip_pretrained.pth) is frozen; the method configs add
# their PETL modules.
_base_ = ['./clip_tiny_synth.py']

model = dict(
    backbone=dict(pretrained='work_dirs/demo/tiny_clip_pretrained.pth',
                  freeze=True))

target = dict(type='SynthPedes', data_root='data/synth_pedes_target',
              num_ids=(300, 50, 100), images_per_id=4, image_size=(192, 64),
              seed=0, caption_style='terse', camera='cctv', generate=True)
train_dataloader = dict(dataset=dict(**target, split='train'))
val_dataloader = dict(dataset=dict(**target, split='val'))
test_dataloader = dict(dataset=dict(**target, split='test'))

max_epochs = 6
param_scheduler = [
    dict(type='WarmupCosineLR', warmup_steps=1, warmup_factor=0.1,
         total_steps=max_epochs, eta_min_ratio=0.01, by_epoch=True,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
# PETL-only checkpoints: the trainable parameters and what resume needs
default_hooks = dict(petl_checkpoint=dict(petl_only=True))
