# DM-Adapter trained on CUHK-PEDES and RSTPReid together, one domain prompt
# per dataset (an mmtpr extension; with one domain it is the paper).
# Validation and test on CUHK-PEDES; test RSTPReid with
#   --cfg-options test_dataloader.dataset.type=RSTPReid \
#     test_dataloader.dataset.data_root=data/RSTPReid \
#     test_dataloader.dataset.domain=1
_base_ = ['./clip_b16_cuhk.py']

model = dict(backbone=dict(petl=[
    dict(type='MixtureOfAdapters', num_experts=6, top_k=2, reduction=8,
         scales=dict(visual=0.1, text=4.0), num_domains=2)
]))

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # the two datasets' sizes differ; everything else must match
        ignore_keys=['num_pids', 'num_images', 'num_captions'],
        datasets=[
            dict(type='CUHKPEDES', data_root='data/CUHK-PEDES',
                 split='train', domain=0,
                 pipeline={{_base_.train_pipeline}}),
            # CUHK-PEDES has 11,003 training persons: RSTPReid's ids start
            # after them so that no two persons share an id
            dict(type='RSTPReid', data_root='data/RSTPReid', split='train',
                 domain=1, pid_offset=11003,
                 pipeline={{_base_.train_pipeline}}),
        ]))
