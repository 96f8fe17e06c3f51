"""Rendering of one photo of an identity.

Combines a street-like background, the pedestrian of
:mod:`mmtpr.datasets.synth.person` and per-image variation (scale, shift,
stride, flip, brightness and sensor-like noise).
"""
import colorsys
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from .attributes import RGB
from .pen import _Pen
from .person import _draw_person


def _muted_color(rng: np.random.Generator) -> RGB:
    # Low saturation keeps the background from competing with the garment
    # colours that the captions name.
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.03, 0.28),
                                  rng.uniform(0.3, 0.8))
    return (int(r * 255), int(g * 255), int(b * 255))


def _background(rng: np.random.Generator, height: int, width: int,
                floor_y: float, ss: int) -> Image.Image:
    """Draw a street-like background: flat, gradient or blotchy.

    Everything is up-sampled from a few pixels with PIL, which is much
    faster than full-size numpy arithmetic. Smooth up-sampling is done at
    the output resolution only (``ss`` times smaller), the rest by pixel
    repetition, which the final ``reduce(ss)`` undoes exactly.
    """
    c0 = _muted_color(rng)
    mode = int(rng.integers(4))
    if mode == 0:
        img = Image.new('RGB', (width, height), c0)
    else:
        if mode == 1:  # vertical gradient
            grid = np.array([[c0], [_muted_color(rng)]], dtype=np.float32)
        elif mode == 2:  # horizontal gradient
            grid = np.array([[c0, _muted_color(rng)]], dtype=np.float32)
        else:
            # Smooth blotches, like blurred scenery behind a pedestrian.
            grid = np.asarray(c0, dtype=np.float32) + rng.normal(
                0.0, 18.0, size=(6, 3, 3))
        small = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8))
        img = small.resize((width // ss, height // ss), Image.BILINEAR)
        img = img.resize((width, height), Image.NEAREST)
    if rng.random() < 0.5:
        # A ground plane of another muted colour below the feet.
        top = int(max(0, min(height, floor_y)))
        floor = Image.new('RGB', (width, height - top), _muted_color(rng))
        img.paste(Image.blend(img.crop((0, top, width, height)), floor, 0.6),
                  (0, top))
    return img


def _noise_banks(rng: np.random.Generator,
                 image_size: Tuple[int, int]) -> List[Image.Image]:
    """Pre-computed pixel noise, one bank per noise level.

    Every image adds a random crop of a bank: adding fresh Gaussian noise
    to every image would cost more than drawing it.
    """
    height, width = image_size
    banks = []
    for sigma in (1.5, 3.0, 4.5):
        noise = rng.standard_normal((2 * height, 2 * width, 3))
        banks.append(Image.fromarray(
            np.clip(np.rint(128.0 + sigma * noise), 0, 255).astype(
                np.uint8)))
    return banks


def _render_image(rng: np.random.Generator, ident: Dict[str, Any],
                  image_size: Tuple[int, int], pose: str,
                  noise_banks: Sequence[Image.Image]) -> Image.Image:
    """Render one photo of an identity with random per-image variation.

    Args:
        rng (np.random.Generator): Source of randomness.
        ident (dict): An identity from :func:`_sample_identities`.
        image_size (tuple[int, int]): ``(height, width)`` of the result.
        pose (str): ``'front'`` or ``'back'``.
        noise_banks (Sequence[PIL.Image.Image]): From :func:`_noise_banks`
            for the same ``image_size``.

    Returns:
        PIL.Image.Image: An RGB image.
    """
    height, width = image_size
    # Draw at twice the size and average down: cheap anti-aliasing.
    ss = 2
    hs, ws = height * ss, width * ss
    # The body incl. arms spans about 0.36 figure heights; keep it inside a
    # narrow crop even for unusual aspect ratios.
    fh = min(rng.uniform(0.82, 0.95) * hs, ws / 0.37)
    y0 = (hs - fh) * rng.uniform(0.2, 0.8)
    slack = max(ws / 2 - 0.17 * fh, 0.04 * ws)
    cx = ws / 2 + rng.uniform(-1.0, 1.0) * slack
    stride = float(rng.uniform(-0.012, 0.03))
    spread = float(rng.uniform(0.0, 0.03))
    img = _background(rng, hs, ws, y0 + 0.97 * fh, ss)
    pen = _Pen(ImageDraw.Draw(img), cx, y0, fh, line=ss)
    _draw_person(pen, ident, pose, stride, spread)
    img = img.reduce(ss)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    # Brightness jitter and sensor-like noise, with PIL's C operations.
    gain = rng.uniform(0.82, 1.15)
    offset = int(round(rng.uniform(-10.0, 10.0)))
    img = Image.blend(Image.new('RGB', img.size), img, gain)
    bank = noise_banks[int(rng.integers(len(noise_banks)))]
    ox = int(rng.integers(bank.width - width + 1))
    oy = int(rng.integers(bank.height - height + 1))
    noise = bank.crop((ox, oy, ox + width, oy + height))
    return ImageChops.add(img, noise, 1.0, offset - 128)
