# Cross-domain test: DM-Adapter trained on ICFG-PEDES
# (configs/dm_adapter/clip_b16_icfg.py),
# tested on the RSTPReid test split without retraining:
#   python tools/test.py configs/cross_domain/dm_adapter_icfg_to_rstp.py \
#     work_dirs/clip_b16_icfg/<checkpoint>.pth
# Only the test dataset changes: model, pipelines and split 'test' are
# those of the training config.
_base_ = ['../dm_adapter/clip_b16_icfg.py']

test_dataloader = dict(
    dataset=dict(type='RSTPReid', data_root='data/RSTPReid'))
