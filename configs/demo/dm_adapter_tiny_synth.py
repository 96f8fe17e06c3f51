# Stage 2 of the embedded default (`python tools/demo.py`): DM-Adapter (a
# sparse mixture of adapters with a domain-aware router beside every MLP,
# SDM + load-balancing loss) adapts the frozen tiny CLIP to the target
# domain of _target.py. The learning rate is the best of the grid of
# benchmarks/methods_synth.py on the validation split.
_base_ = ['./_target.py']

model = dict(
    backbone=dict(petl=[
        # The paper's output scales (0.1 visual, 4 text) are tuned for
        # ViT-B/16's widths; the 128-wide tiny CLIP uses 1 for both.
        dict(type='MixtureOfAdapters', num_experts=6, top_k=2, reduction=8,
             scales=dict(visual=1.0, text=1.0)),
    ]),
    aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5),
)
optim_wrapper = dict(
    optimizer=dict(lr=3e-3),
    paramwise_cfg=dict(
        custom_keys={'bias': dict(lr_mult=2.0, decay_mult=0.0)}))
