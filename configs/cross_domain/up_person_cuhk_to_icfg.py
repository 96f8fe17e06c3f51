# Cross-domain test: UP-Person trained on CUHK-PEDES
# (configs/up_person/clip_b16_cuhk.py),
# tested on the ICFG-PEDES test split without retraining:
#   python tools/test.py configs/cross_domain/up_person_cuhk_to_icfg.py \
#     work_dirs/clip_b16_cuhk/<checkpoint>.pth
# Only the test dataset changes: model, pipelines and split 'test' are
# those of the training config.
_base_ = ['../up_person/clip_b16_cuhk.py']

test_dataloader = dict(
    dataset=dict(type='ICFGPEDES', data_root='data/ICFG-PEDES'))
