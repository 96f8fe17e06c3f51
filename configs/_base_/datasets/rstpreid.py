# RSTPReid: data/RSTPReid/{data_captions.json, imgs/}.
_base_ = ['./cuhk_pedes.py']

dataset_type = 'RSTPReid'
data_root = 'data/RSTPReid'

train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
