# DM-Adapter on ICFG-PEDES. No val split: the last epoch is the result
# (see configs/_base_/datasets/icfg_pedes.py).
_base_ = ['./_model.py', '../_base_/datasets/icfg_pedes.py']

val_cfg = None
default_hooks = dict(checkpoint=dict(save_best=None))
