# ICFG-PEDES: data/ICFG-PEDES/{ICFG-PEDES.json or ICFG_PEDES.json, imgs/}.
# It has no validation split: configs on it train for the fixed schedule
# without validation and report the LAST epoch (no model selection, and
# in particular none on the test split).
_base_ = ['./cuhk_pedes.py']

dataset_type = 'ICFGPEDES'
data_root = 'data/ICFG-PEDES'

train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = None
val_evaluator = None
