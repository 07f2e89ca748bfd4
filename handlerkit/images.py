"""Turning one request row into a PIL image: find the payload, decode it, check its size.

This is the first step of `VisionHandler.preprocess`; every failure becomes a `RequestError`
that names what is wrong with that row.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import RequestError, TooManyPixels, UnsupportedFormat

# Pillow's own default for Image.MAX_IMAGE_PIXELS. Kept here because TorchServe's VisionHandler
# sets Pillow's global to None (no limit) when the context lacks `limit_max_image_pixels`.
DEFAULT_MAX_PIXELS = 89_478_485

# The formats an image handler opens: what cameras, browsers and image libraries write. Pillow
# reads many more (EPS and PS run Ghostscript, some are fonts or icons); those are refused.
# (Multi-picture JPEGs from cameras open through JPEG, as format "MPO".)
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM")

# Pixels handled at a time where an image is scaled, reduced or converted a band of rows at a time
# (about 4 million: 12 MB of RGB), so a large image never needs a second whole copy.
BAND_PIXELS = 1 << 22

# `data:image/png;base64,` (a data URL, as browsers and canvas.toDataURL write it)
_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)


def request_payload(row: Any) -> Any:
    """The payload of one request row: `row["data"]`, else `row["body"]` (TorchServe's rule)."""
    if not isinstance(row, dict):
        raise RequestError(
            f"a request row must be a dict with 'data' or 'body', got {type(row).__name__}"
        )
    if "data" not in row and "body" not in row:  # a form body: TorchServe split it into fields
        fields = ", ".join(repr(str(name)[:20]) for name in list(row)[:3])
        cause = (
            "a body sent as application/x-www-form-urlencoded (what curl -d and urllib send by "
            "default) is split into fields"
            if fields
            else "TorchServe found no field in the form (a multipart form without its closing "
            "boundary, or a url-encoded body with no '=', which curl -d sends for a file)"
        )
        raise RequestError(
            f"no 'data' or 'body' in this request, only form fields ({fields or 'none'}): "
            f"{cause}; send the image as application/octet-stream (curl --data-binary "
            "@image.png -H 'Content-Type: application/octet-stream') or as a form field 'data'"
        )
    payload = row.get("data") or row.get("body")
    if payload is None or (hasattr(payload, "__len__") and len(payload) == 0):
        raise RequestError("empty request: no bytes under 'data' or 'body'")
    if isinstance(payload, str):
        return decode_base64(payload)
    if isinstance(payload, (bytes, bytearray, list)):
        return payload
    raise RequestError(f"unsupported payload type {type(payload).__name__}; send image bytes")


def decode_base64(text: str) -> bytes:
    """Base64 text as tools write it -> bytes.

    Line breaks (MIME wraps every 76 characters, as `base64` and e-mail do), surrounding spaces
    and a `data:image/...;base64,` prefix are allowed; anything else that is not base64 is refused.
    """
    body = "".join(_DATA_URL.sub("", text.strip(), count=1).split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(
            f"the payload is a string but not valid base64 of an image ({err}); send the image "
            "bytes, their base64 text, or a data:image/...;base64, URL"
        ) from None


def pixel_limit(properties: dict) -> int | None:
    """The pixel limit a context asks for: on by default, off only when set to False/0."""
    value = properties.get("limit_max_image_pixels", True)
    if value is None or value is True:
        return DEFAULT_MAX_PIXELS
    if value is False or value == 0:
        return None
    return int(value)


class _PillowCheckOff:
    """Switches Pillow's own pixel check off while handlerkit opens and decodes an image.

    handlerkit checks each header against the handler's limit itself, before any pixel is decoded;
    Pillow's global check (an error at twice `Image.MAX_IMAGE_PIXELS`) would add a second limit,
    which `limit_max_image_pixels=False` or a higher limit could not lift. Nested and
    thread-safe: Pillow's setting is restored when the last decode ends.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.saved = None

    @contextmanager
    def __call__(self):
        with self.lock:
            if self.active == 0:
                self.saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            self.active += 1
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    Image.MAX_IMAGE_PIXELS = self.saved


pillow_check_off = _PillowCheckOff()


def open_image(
    data: bytes | bytearray,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: tuple[str, ...] = IMAGE_FORMATS,
) -> Image.Image:
    """Read the image header (no pixels decoded yet); refuse non-images and oversized images."""
    with pillow_check_off():
        try:
            image = Image.open(io.BytesIO(data), formats=formats)
        except UnidentifiedImageError:
            raise not_an_image(data, formats) from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise TooManyPixels(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (limit_max_image_pixels); send a smaller image"
        )
    return image


def not_an_image(data: bytes | bytearray, formats: tuple[str, ...]) -> RequestError:
    """The error for bytes Pillow did not open: a format not on the list, or not an image."""
    Image.init()
    prefix = bytes(data[:16])
    for name, (_factory, accept) in Image.OPEN.items():
        if name not in formats and _accepts(accept, prefix):
            return UnsupportedFormat(
                f"{name} images are not accepted; send one of {', '.join(formats)}"
            )
    return RequestError(
        f"not an image: Pillow cannot identify {len(data)} bytes starting {prefix[:8]!r}"
    )


def _accepts(accept, prefix: bytes) -> bool:
    """Whether a Pillow plugin's check of the first bytes says "my format" (nothing is parsed)."""
    try:
        found = accept(prefix) if accept else False
    except Exception:  # noqa: BLE001 - some checks fail on prefixes too short for them
        return False
    return bool(found) and not isinstance(found, str)


def decode_image(
    data: bytes | bytearray,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: tuple[str, ...] = IMAGE_FORMATS,
    decode_size: int | None = None,
) -> Image.Image:
    """Decode image bytes: header checks first, then the pixels, upright and in 8 bits.

    Args:
        data: the file's bytes.
        max_pixels: refuse images whose header declares more pixels (None: no limit).
        formats: the formats to open (others are refused, naming their format).
        decode_size: for pipelines that shrink the image anyway: decode no larger than needed
            while both sides stay at least this (JPEG decodes at 1/2, 1/4 or 1/8 scale, other
            formats are reduced by a whole factor). None decodes at full size, as TorchServe.
    """
    with pillow_check_off():
        image = open_image(data, max_pixels, formats)
        if decode_size and image.format in ("JPEG", "MPO"):
            image.draft(None, (decode_size, decode_size))
        try:
            image.load()
        except OSError as err:
            width, height = image.size
            raise RequestError(f"broken {image.format} image ({width}x{height}): {err}") from None
    image = upright(image)
    if decode_size and image.mode not in _SIXTEEN_BIT:
        image = shrink(image, decode_size)  # before the 8-bit copy, so that copy is small
    image = to_8_bits(image)
    return shrink(image, decode_size) if decode_size else image


def shrink(image: Image.Image, size: int) -> Image.Image:
    """Reduce by a whole factor while both sides stay at least `size` (a box filter, fast).

    Works a band of rows at a time, so memory stays small (Pillow's own `reduce` copies a whole
    RGBA image first); palette and 1-bit images come back as RGB(A) and L.
    """
    factor = min(image.size) // size
    if factor < 2:
        return image
    mode = {"1": "L", "P": "RGBA" if "transparency" in image.info else "RGB"}.get(image.mode)
    width, height = image.size
    out = Image.new(mode or image.mode, (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, BAND_PIXELS // (width * factor))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        out.paste((convert_mode(band, mode) if mode else band).reduce(factor), (0, top // factor))
    return out


def upright(image: Image.Image) -> Image.Image:
    """Turn a photo upright as its camera asked (EXIF orientation); others are left as they are."""
    if image.getexif().get(ORIENTATION, 1) in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


ORIENTATION = 0x0112  # the EXIF tag phones set instead of rotating the pixels
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def to_8_bits(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit or float image to 8-bit grey by its own range, as a viewer shows it.

    16-bit images use their type's range (0..65535); float images 0..1 when all values lie there,
    else their minimum..maximum; 32-bit integers 0..255 or 0..65535 when they fit, else min..max.
    Other modes are returned unchanged. Works in bands of rows, so memory stays small.
    """
    if image.mode not in _SIXTEEN_BIT + ("I", "F"):
        return image
    low, high = _value_range(image)
    scale = 255 / (high - low) if high > low else 0.0
    out = Image.new("L", image.size)
    band = max(1, BAND_PIXELS // max(1, image.width))
    for top in range(0, image.height, band):
        box = (0, top, image.width, min(image.height, top + band))
        pixels = np.array(image.crop(box), dtype=np.float32)  # a writable copy
        pixels -= low
        pixels *= scale
        np.clip(np.rint(pixels, out=pixels), 0, 255, out=pixels)
        out.paste(Image.fromarray(pixels.astype(np.uint8), "L"), box[:2])
    return out


def _value_range(image: Image.Image) -> tuple[float, float]:
    """The range of values that maps to 0..255 (see `to_8_bits`)."""
    if image.mode in _SIXTEEN_BIT:
        return 0.0, 65535.0
    low, high = image.getextrema()
    if image.mode == "F" and low >= 0 and high <= 1:
        return 0.0, 1.0
    if image.mode == "I" and low >= 0 and high <= 255:
        return 0.0, 255.0
    if image.mode == "I" and low >= 0 and high <= 65535:
        return 0.0, 65535.0
    return float(low), float(high)


# The most pixels one resize may make: Resize(256) of a 256:1 strip. A 92-byte 4000x1 PNG would
# otherwise become a 1024000x256 image (about 1 GB) before CenterCrop keeps 224x224 of it.
MAX_RESIZED_PIXELS = 4096 * 4096


def resized_size(size: tuple[int, int], target, max_size: int | None = None) -> tuple[int, int]:
    """(width, height) that torchvision's `Resize(target, max_size=...)` makes of `size`."""
    width, height = size
    if isinstance(target, (list, tuple)) and len(target) == 2:
        return int(target[1]), int(target[0])
    short_target = int(target[0] if isinstance(target, (list, tuple)) else target)
    short, long = min(size), max(size)
    new_short, new_long = short_target, int(short_target * long / max(1, short))
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if width <= height else (new_long, new_short)


def check_resize(size: tuple[int, int], target, max_size: int | None = None) -> tuple[int, int]:
    """The size `Resize(target)` makes of `size`; refused (413) when over MAX_RESIZED_PIXELS."""
    width, height = resized_size(size, target, max_size)
    if width * height > MAX_RESIZED_PIXELS:
        ratio = max(size) / max(1, min(size))
        raise TooManyPixels(
            f"Resize({target}) would make this {size[0]}x{size[1]} image {width}x{height} = "
            f"{width * height:,} pixels, over the limit of {MAX_RESIZED_PIXELS:,} for one step; "
            f"send a picture closer to square (this one is {ratio:.0f}:1)"
        )
    return width, height


def convert_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert to the mode the model needs (e.g. grayscale, RGBA, CMYK, palette -> RGB)."""
    return image if image.mode == mode else image.convert(mode)
