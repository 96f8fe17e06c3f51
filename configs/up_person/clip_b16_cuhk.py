# UP-Person on CUHK-PEDES: lr 1e-3, validated on the val split.
_base_ = ['./_model.py', '../_base_/datasets/cuhk_pedes.py']
