"""Synthetic uploads for tests: held-out MNIST digits re-drawn as photos, and printed digits.
Generated at test time (seeded) and fed through handlerkit.digits like real uploaded files."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from handlerkit.course.train import heldout_split

FORMATS = ("jpeg", "rgba_png", "rgb_png")
PRINT_SIZES = (40, 90, 180)  # font sizes in points (PIL: pixels per em)


def encode(image: Image.Image, fmt: str, quality: int = 85) -> bytes:
    """Save `image` as JPEG or PNG bytes, the way a browser upload arrives."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def paper(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Light, slightly uneven grey paper with sensor-like noise, float RGB of shape (h, w, 3)."""
    w, h = size
    shade = rng.uniform(205, 250)
    gradient = np.linspace(0, rng.uniform(-12, 12), w)[None, :, None]
    noise = rng.normal(0, 3, (h, w, 1))
    return np.clip(shade + gradient + noise, 0, 255) * np.ones(3)


def place(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put a square ink-coverage map off-centre on a sheet 1.2-2x its size (0 = bare paper)."""
    side = ink.shape[0]
    height, width = (int(side * rng.uniform(1.2, 2.0)) for _ in range(2))
    sheet = np.zeros((height, width))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    sheet[top : top + side, left : left + side] = ink
    return sheet


def redraw(digit: np.ndarray, rng: np.random.Generator, fmt: str) -> bytes:
    """Re-draw one MNIST digit (light on dark, 28x28) as dark ink on a larger sheet of paper.

    The digit is scaled to 140-320 px and placed off-centre; `fmt` is "jpeg" (quality 70-90),
    "rgba_png" (opaque ink, fully transparent background) or "rgb_png".
    """
    side = int(rng.integers(140, 321))
    scaled = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    ink = place(np.asarray(scaled, dtype=np.float64) / 255, rng)[..., None]  # 1: pen, 0: paper
    pen = rng.uniform(0, 60, 3) * np.array([1, 1, 1.6])  # black to dark blue
    if fmt == "rgba_png":
        rgba = np.dstack([pen * np.ones_like(ink), ink * 255])
        return encode(Image.fromarray(np.round(rgba).astype(np.uint8), "RGBA"), fmt)
    sheet = paper((ink.shape[1], ink.shape[0]), rng) * (1 - ink) + pen * ink
    image = Image.fromarray(np.round(sheet).astype(np.uint8), "RGB")
    return encode(image, fmt, quality=int(rng.integers(70, 91)))


def redrawn_heldout(n: int = 300, seed: int = 0) -> list[tuple[bytes, int]]:
    """`n` held-out MNIST digits (never trained on) re-drawn as uploads, cycling the formats."""
    _, _, X_held, y_held = heldout_split()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(y_held), size=n, replace=False)
    return [(redraw(X_held[i], rng, FORMATS[k % 3]), int(y_held[i])) for k, i in enumerate(picks)]


def dejavu_fonts() -> list[Path]:
    """The DejaVu TrueType fonts matplotlib ships (the Display cuts lack digits, so skipped)."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(p for p in folder.glob("DejaVu*.ttf") if "Display" not in p.name)


def render(text: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> Image.Image:
    """Print `text` in near-black on light paper with a random margin."""
    left, top, right, bottom = font.getbbox(text)
    margin = int((bottom - top) * rng.uniform(0.3, 1.0))
    size = (right - left + 2 * margin, bottom - top + 2 * margin)
    image = Image.fromarray(np.round(paper(size, rng)).astype(np.uint8), "RGB")
    ink = tuple(int(v) for v in rng.integers(0, 50, 3))
    ImageDraw.Draw(image).text((margin - left, margin - top), text, fill=ink, font=font)
    return image


def printed_digits_by_font(seed: int = 0) -> dict[str, list[tuple[bytes, int]]]:
    """Digits 0-9 in each DejaVu font at several sizes, keyed by font (e.g. DejaVuSans-Bold)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[bytes, int]]] = {}
    for path in dejavu_fonts():
        for size in PRINT_SIZES:
            font = ImageFont.truetype(str(path), size)
            for digit in range(10):
                image = render(str(digit), font, rng)
                fmt = "jpeg" if digit % 2 else "rgb_png"
                out.setdefault(path.stem, []).append((encode(image, fmt), digit))
    return out


def printed_digits(seed: int = 0) -> list[tuple[bytes, int]]:
    """Every printed digit of printed_digits_by_font, as one list of (bytes, label)."""
    return [item for items in printed_digits_by_font(seed).values() for item in items]
