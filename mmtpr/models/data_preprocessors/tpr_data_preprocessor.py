"""Moves TPR batches to the device, normalises images, stacks captions."""
import math
from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mmtpr.registry import MODELS

# CLIP's image statistics on the 0-255 scale.
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)


@MODELS.register_module()
class TPRDataPreprocessor(BaseDataPreprocessor):
    """Batch images and captions of a TPR dataloader on the model's device.

    Images arrive as uint8 (3, H, W) tensors in the channel order of
    ``LoadPersonImage`` (BGR by default), captions as (N_i, L) token ids per
    sample (N_i = 1 in training, all captions of an image in testing).

    Training-time random erasing runs here, on the device, AFTER
    normalisation, because that is where IRRA's pipeline applies it
    (``RandomErasing(value=mean)`` after ``Normalize``): the erased box is
    filled with ``erase_value`` in normalised space (docs/methods.md §0.9).

    Args:
        mean (sequence of float): per-channel mean on the 0-255 scale, in
            RGB order. Defaults to CLIP's.
        std (sequence of float): per-channel std on the 0-255 scale, RGB.
            Defaults to CLIP's.
        to_rgb (bool): convert BGR input to RGB. Defaults to True.
        random_erasing (dict, optional): ``dict(prob, scale, ratio, value)``
            for training-time erasing after normalisation; None disables it.
            Defaults to None.

    Example:
        >>> data_preprocessor = dict(
        ...     type='TPRDataPreprocessor', to_rgb=True,
        ...     random_erasing=dict(prob=0.5, scale=(0.02, 0.4),
        ...                         ratio=(0.3, 3.3),
        ...                         value=(0.48145466, 0.4578275, 0.40821073)))
    """

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 to_rgb: bool = True,
                 random_erasing: Optional[dict] = None) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values, got {mean}, {std}')
        self.register_buffer('mean', torch.tensor(mean).view(3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(3, 1, 1), False)
        self.to_rgb = to_rgb
        self.random_erasing = None
        if random_erasing is not None:
            self.random_erasing = RandomErasingNormalized(**random_erasing)

    def normalize_images(self, images) -> torch.Tensor:
        """(B, 3, H, W) uint8 BGR images (or a list of (3, H, W)) on this
        module's device -> float, RGB, CLIP-normalised."""
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))
        images = images.to(self.mean.device).float()
        if self.to_rgb:
            images = images.flip(1)
        return (images - self.mean) / self.std

    def forward(self, data: dict, training: bool = False) -> dict:
        """Return ``dict(images, texts, text_counts, data_samples)``.

        ``images`` is (B, 3, H, W) float, ``texts`` (sum N_i, L) long and
        ``text_counts`` the N_i of each sample. A batch may carry images
        only or captions only (e.g. a gallery, or search queries); the
        missing modality is None.
        """
        if 'inputs' not in data and 'texts' not in data:
            raise KeyError(f'batch has neither inputs nor texts (keys: '
                           f'{list(data)}); pack samples with PackTPRInputs')
        data = self.cast_data(data)
        images = None
        if data.get('inputs') is not None:
            images = self.normalize_images(data['inputs'])
            if training and self.random_erasing is not None:
                images = self.random_erasing(images)
        texts, text_counts = None, None
        if data.get('texts') is not None:
            texts = data['texts']
            if isinstance(texts, (list, tuple)):
                texts = [t.view(1, -1) if t.dim() == 1 else t for t in texts]
                text_counts = [int(t.shape[0]) for t in texts]
                texts = torch.cat(texts)
            else:
                text_counts = [1] * texts.shape[0]
            texts = texts.long()
        return dict(images=images, texts=texts, text_counts=text_counts,
                    data_samples=data.get('data_samples'))


class RandomErasingNormalized:
    """torchvision-style random erasing of a batch, sample by sample.

    Uses the same sampling as ``torchvision.transforms.RandomErasing`` (up to
    10 tries of area in ``scale`` and log-uniform aspect ``ratio``), drawn
    from torch's global generator so that MMEngine's seed controls it.

    Args:
        prob (float): probability of erasing each image. Defaults to 0.5.
        scale (tuple): range of the erased area fraction.
        ratio (tuple): range of the erased box aspect ratio.
        value (sequence of float): per-channel fill value.
    """

    def __init__(self,
                 prob: float = 0.5,
                 scale: Sequence[float] = (0.02, 0.4),
                 ratio: Sequence[float] = (0.3, 3.3),
                 value: Sequence[float] = (0.48145466, 0.4578275,
                                           0.40821073)) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'random_erasing prob must be in [0, 1], got '
                             f'{prob}')
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f'scale and ratio must be (min, max), got '
                             f'{scale}, {ratio}')
        self.prob = prob
        self.scale = tuple(scale)
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.value = torch.tensor(value, dtype=torch.float32).view(-1, 1, 1)

    def _box(self, height: int, width: int):
        area = height * width
        for _ in range(10):
            target = area * torch.empty(1).uniform_(*self.scale).item()
            aspect = math.exp(
                torch.empty(1).uniform_(*self.log_ratio).item())
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if h < height and w < width:
                top = int(torch.randint(0, height - h + 1, (1, )).item())
                left = int(torch.randint(0, width - w + 1, (1, )).item())
                return top, left, h, w
        return None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Erase in place and return the (B, C, H, W) batch."""
        value = self.value.to(images)
        for img in images:
            if torch.rand(1).item() >= self.prob:
                continue
            box = self._box(img.shape[-2], img.shape[-1])
            if box is not None:
                top, left, h, w = box
                img[:, top:top + h, left:left + w] = value
        return images
