# DM-Adapter on CUHK-PEDES, validated on the val split.
_base_ = ['./_model.py', '../_base_/datasets/cuhk_pedes.py']
