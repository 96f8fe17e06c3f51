# DM-Adapter on RSTPReid, validated on the val split. The reference gives
# no per-dataset lr for DM-Adapter: 3e-4 as for the others.
_base_ = ['./_model.py', '../_base_/datasets/rstpreid.py']
