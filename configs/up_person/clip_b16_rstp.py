# UP-Person on RSTPReid: lr 1e-4 (the reference script's comment),
# validated on the val split.
_base_ = ['./_model.py', '../_base_/datasets/rstpreid.py']

optim_wrapper = dict(optimizer=dict(lr=1e-4))
