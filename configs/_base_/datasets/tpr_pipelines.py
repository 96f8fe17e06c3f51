# The image and caption pipelines of docs/methods.md §0.9 (384x128 input).
# Images are decoded and resized with Pillow, as the reference does (PIL's
# bilinear resize antialiases when it shrinks; OpenCV's does not).
image_size = (384, 128)  # (height, width)
context_length = 77

train_pipeline = [
    dict(type='LoadPersonImage', imdecode_backend='pillow'),
    dict(type='Resize', scale=(image_size[1], image_size[0]),
         keep_ratio=False, interpolation='bilinear', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # Pad(10) with zeros, then a random crop back to the input size
    dict(type='RandomCrop', crop_size=image_size, padding=10, pad_val=0),
    dict(type='TokenizeCaption', context_length=context_length),
    dict(type='MaskCaption', prob=0.15),
    dict(type='PackTPRInputs'),
]
test_pipeline = [
    dict(type='LoadPersonImage', imdecode_backend='pillow'),
    dict(type='Resize', scale=(image_size[1], image_size[0]),
         keep_ratio=False, interpolation='bilinear', backend='pillow'),
    dict(type='TokenizeCaption', context_length=context_length),
    dict(type='PackTPRInputs'),
]
