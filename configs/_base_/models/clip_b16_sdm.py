# CLIP ViT-B/16 (OpenAI weights) at 384x128 with the SDM loss.
# Get OpenAI's ViT-B-16.pt once (see the README) and put it at
# checkpoints/ViT-B-16.pt, or point `pretrained` elsewhere.
model = dict(
    type='TPRRetriever',
    backbone=dict(
        type='OpenCLIPBackbone',
        model_name='ViT-B-16',
        pretrained='checkpoints/ViT-B-16.pt',
        # OpenAI's CLIP was trained with QuickGELU: declared, and checked
        # against what the weights file says (an error if they disagree)
        quick_gelu=True,
        image_size=(384, 128),
        freeze=True),
    head=dict(type='SDMHead', temperature=0.02,
              loss=dict(type='SDMLoss', eps=1e-8)),
    data_preprocessor=dict(
        type='TPRDataPreprocessor',
        to_rgb=True,
        # IRRA erases after Normalize, filling with the mean (docs/methods.md §0.9)
        random_erasing=dict(
            prob=0.5,
            scale=(0.02, 0.4),
            ratio=(0.3, 3.3),
            value=(0.48145466, 0.4578275, 0.40821073))),
)
