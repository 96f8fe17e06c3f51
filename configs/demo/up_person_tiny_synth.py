# Stage 2 of the embedded default (`python tools/demo.py`): UP-Person
# (S-Prefix, KV-LoRA on the keys and values, L-Adapter beside the
# LayerNorms) adapts the frozen tiny CLIP to the target domain of
# _target.py. The paper's P=10 prefix tokens and reduction 8; rank 8 (the
# paper's 32 is a quarter of ViT-B/16's head size, so a quarter of 32 for
# heads of 32). The learning rate is the best of the grid of
# benchmarks/methods_synth.py on the validation split.
_base_ = ['./_target.py']

model = dict(
    backbone=dict(petl=[
        dict(type='ScaledPrefix', length=10, sp_init=100.0),
        dict(type='KVLoRA', rank=8),
        dict(type='LNAdapter', reduction=8),
    ]))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
