"""Turning one request row into a PIL image: find the payload, decode it, check its size.

This is the first step of `VisionHandler.preprocess`; every failure becomes a `RequestError`
that names what is wrong with that row.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError

from .errors import RequestError, TooManyPixels

# Pillow's own default for Image.MAX_IMAGE_PIXELS. Kept here because TorchServe's VisionHandler
# sets Pillow's global to None (no limit) when the context lacks `limit_max_image_pixels`.
DEFAULT_MAX_PIXELS = 89_478_485


def request_payload(row: Any) -> Any:
    """The payload of one request row: `row["data"]`, else `row["body"]` (TorchServe's rule)."""
    if not isinstance(row, dict):
        raise RequestError(
            f"a request row must be a dict with 'data' or 'body', got {type(row).__name__}"
        )
    payload = row.get("data") or row.get("body")
    if payload is None or (hasattr(payload, "__len__") and len(payload) == 0):
        raise RequestError("empty request: no bytes under 'data' or 'body'")
    if isinstance(payload, str):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("the payload is a string but not valid base64 of an image") from None
    if isinstance(payload, (bytes, bytearray, list)):
        return payload
    raise RequestError(f"unsupported payload type {type(payload).__name__}; send image bytes")


def pixel_limit(properties: dict) -> int | None:
    """The pixel limit a context asks for: on by default, off only when set to False/0."""
    value = properties.get("limit_max_image_pixels", True)
    if value is None or value is True:
        return DEFAULT_MAX_PIXELS
    if value is False or value == 0:
        return None
    return int(value)


def open_image(data: bytes | bytearray, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read the image header (no pixels decoded yet); refuse non-images and oversized images."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:  # Pillow's own check, at twice its limit
        raise TooManyPixels(
            f"image is over the limit of {max_pixels or DEFAULT_MAX_PIXELS:,} pixels "
            f"(limit_max_image_pixels): {err}"
        ) from None
    except UnidentifiedImageError:
        head = bytes(data[:8])
        raise RequestError(
            f"not an image: Pillow cannot identify {len(data)} bytes starting {head!r}"
        ) from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise TooManyPixels(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (limit_max_image_pixels); send a smaller image"
        )
    return image


def decode_image(
    data: bytes | bytearray, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode image bytes, refusing oversized images from their header, before decoding pixels."""
    image = open_image(data, max_pixels)
    try:
        image.load()
    except OSError as err:
        width, height = image.size
        raise RequestError(f"broken {image.format} image ({width}x{height}): {err}") from None
    return image


def convert_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert to the mode the model needs (e.g. grayscale, RGBA, CMYK, palette -> RGB)."""
    return image if image.mode == mode else image.convert(mode)
