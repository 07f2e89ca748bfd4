"""Upload preprocessing: turn a photo or drawing of a digit into an MNIST-style 1x28x28 tensor.
Named, ordered steps the MNIST handler runs one by one (so a trace can show each) before Net."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import functional as TF

from .images import upright
from .stats import MNIST_MEAN as MEAN  # MNIST's pixel statistics, as TorchServe's
from .stats import MNIST_STD as STD  # MNIST example handler normalizes with

BOX, FIELD = 20, 28  # MNIST fits each digit into 20x20, then centres it in a 28x28 field
MIN_CONTRAST = 40  # ink must differ from the paper by this many grey levels (of 255)
INK_FRACTION = 0.25  # a pixel is ink above this fraction of the paper-to-ink range
FLOOR = 0.12  # fainter than this fraction of the ink range is paper texture or JPEG noise


def flatten_alpha(image: Image.Image) -> Image.Image:
    """Turn the image upright (camera EXIF) and lay any transparency onto white paper.

    Args:
        image: an upload in any PIL mode (RGB, RGBA, LA, L, P with or without transparency).

    Returns:
        An image with no alpha channel; transparent pixels become white.
    """
    image = upright(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # palette transparency is otherwise dropped silently
    if image.mode not in ("RGBA", "LA", "PA"):
        return image
    rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, rgba).convert("RGB")


def grayscale(image: Image.Image) -> Image.Image:
    """Convert to 8-bit grayscale ("L"), the single channel MNIST has."""
    return image.convert("L")


def border_level(pixels: np.ndarray) -> float:
    """Median of the outermost rows and columns: the paper's grey level."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(np.median(border))


def invert_if_light(image: Image.Image) -> Image.Image:
    """Make the ink light on a dark background, like MNIST, when the paper is light.

    The border, not the whole image, decides: a bold digit can cover most of the picture.
    """
    if border_level(np.asarray(image)) > 127:
        return ImageOps.invert(image)
    return image


def stretch(ink: np.ndarray) -> np.ndarray:
    """Scale so the ink's typical level becomes 1 (clipped to 0..1).

    Typical means the 90th percentile of clearly inked pixels, not the maximum, so a few noisy
    pixels don't dim the whole digit.
    """
    if ink.max() <= 0:
        return np.zeros_like(ink)
    typical = np.percentile(ink[ink > INK_FRACTION * ink.max()], 90)
    return np.clip(ink / typical, 0, 1)


def ink_strength(pixels: np.ndarray) -> np.ndarray:
    """Per-pixel ink strength in 0..1: paper at 0, the ink's typical level at 1.

    Levels are relative to the paper-to-ink range, so grey paper, faint pencil and JPEG noise
    all behave alike.

    Raises:
        ValueError: no ink at all (a blank or uniform image).
    """
    ink = pixels - border_level(pixels)
    if ink.max() < MIN_CONTRAST:
        raise ValueError("no ink found: the image is blank")
    strength = stretch(ink)
    strength[strength < FLOOR] = 0
    return strength


def crop_to_ink(image: Image.Image) -> Image.Image:
    """Subtract the paper's level, stretch the ink to 0..255 and crop to the ink's bounding box.

    Raises:
        ValueError: no ink at all (a blank or uniform image).
    """
    strength = ink_strength(np.asarray(image, dtype=np.float32))
    rows, cols = np.nonzero(strength > INK_FRACTION)
    box = strength[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return Image.fromarray(np.round(box * 255).astype(np.uint8))


def fit_20x20(image: Image.Image) -> Image.Image:
    """Scale the cropped ink so its longer side is 20 px, keeping the aspect ratio (antialiased).

    Shrinking leaves a thin pen's strokes grey; stretching the ink again restores the
    full-strength stroke cores MNIST digits have.
    """
    scale = BOX / max(image.size)
    size = tuple(max(1, round(side * scale)) for side in image.size)
    small = np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    return Image.fromarray(np.round(stretch(small) * 255).astype(np.uint8))


def center_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre of a 2-D array."""
    total = pixels.sum()
    rows, cols = np.indices(pixels.shape)
    return float((rows * pixels).sum() / total), float((cols * pixels).sum() / total)


def center_by_mass(image: Image.Image) -> Image.Image:
    """Paste the digit into a black 28x28 field with its centre of mass on the centre pixel.

    Shifts are whole pixels, as MNIST's were, so the strokes stay sharp.
    """
    row, col = center_of_mass(np.asarray(image, dtype=np.float64))
    field = Image.new("L", (FIELD, FIELD), 0)
    field.paste(image, (round(FIELD / 2 - col), round(FIELD / 2 - row)))
    return field


def to_tensor(image: Image.Image) -> torch.Tensor:
    """ToTensor: 28x28 uint8 image -> 1x28x28 float tensor in [0, 1]."""
    return TF.to_tensor(image)


def normalize(tensor: torch.Tensor) -> torch.Tensor:
    """Normalize((0.1307,), (0.3081,)), exactly as TorchServe's MNIST handler does."""
    return TF.normalize(tensor, MEAN, STD)


# Each step takes the previous one's output: PIL images up to center_by_mass, then tensors.
UPLOAD_STEPS: list[tuple[str, Callable[[Any], Any]]] = [
    ("flatten_alpha", flatten_alpha),
    ("grayscale", grayscale),
    ("invert_if_light", invert_if_light),
    ("crop_to_ink", crop_to_ink),
    ("fit_20x20", fit_20x20),
    ("center_by_mass", center_by_mass),
    ("to_tensor", to_tensor),
    ("normalize", normalize),
]


def prepare_upload(image: Image.Image) -> torch.Tensor:
    """Run every step of UPLOAD_STEPS in order.

    Args:
        image: an uploaded photo or drawing, any size and PIL mode.

    Returns:
        A normalized 1x28x28 float tensor, ready to batch into Net.

    Raises:
        ValueError: the image is blank.
    """
    out: Any = image
    for _name, step in UPLOAD_STEPS:
        out = step(out)
    return out
