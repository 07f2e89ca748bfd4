"""The tensor fast path: an ImageClassifier whose preprocess runs on tensors instead of PIL images.

Per image: decode (torchvision; Pillow for BMP, TIFF, PPM and 16-bit PNGs) -> to the device ->
Resize -> CenterCrop, on uint8; then for the batch: stack -> ToDtype (0..1 floats) -> Normalize.
Close to the PIL path, not equal.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torchvision.io
import torchvision.transforms.v2.functional as TF

from ..errors import RequestError
from ..images import (
    BAND_PIXELS,
    DEFAULT_MAX_PIXELS,
    IMAGE_FORMATS,
    check_resize,
    convert_mode,
    decode_image,
    open_image,
    request_payload,
)
from .image_classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from .vision import float_tensor

# What torchvision.io.decode_image reads; other formats (BMP, TIFF, ...) are decoded by Pillow.
TORCHVISION_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}


class TensorImageClassifier(ImageClassifier):
    """ImageClassifier with a faster preprocess: torchvision decoding and tensor transforms.

    The PIL path (`ImageClassifier`) mirrors TorchServe exactly; this one resizes in torch, whose
    antialiased bilinear filter differs from Pillow's by a few grey levels on some pixels. On a
    CUDA device the decoded uint8 image is copied to the GPU and transformed there.
    """

    resize_to = 256  # the shorter side, as Resize(256)
    crop_to = 224
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def preprocess(self, data: list) -> torch.Tensor | None:
        """Request rows -> a normalized float batch on the device; bad rows are rejected."""
        tensors = self.preprocess_rows(data)
        if not tensors:
            return None
        if all(t.dtype == torch.uint8 for t in tensors.values()):
            batch = self.step("stack", torch.stack, list(tensors.values()))
            return self.finish(batch)  # one ToDtype and one Normalize for the whole batch
        # Some rows were list payloads, already model-ready floats: finish the images one by one.
        rows = [self.finish(t, i) if t.dtype == torch.uint8 else t for i, t in tensors.items()]
        return self.step("stack", torch.stack, rows)

    def preprocess_one(self, row, idx: int) -> torch.Tensor:
        """One request row -> a uint8 (3, crop, crop) image on the device (a list: floats)."""
        payload = request_payload(row)
        if isinstance(payload, list):
            tensor = self.step("as_tensor", float_tensor, payload, idx)
            return self.step("to_device", self._to_device, tensor, idx)
        image = self.step("decode", self.decode, payload, idx)
        image = self.step("to_device", self._to_device, image, idx)  # uint8: 4x less to copy
        image = self.step("Resize", self.resize, image, idx)
        return self.step("CenterCrop", self.center_crop, image, idx)

    def decode(self, payload: bytes) -> torch.Tensor:
        """Image bytes -> uint8 (3, H, W) RGB on the CPU; the header is checked before decoding."""
        limit = self.max_image_pixels
        image_format = read_header(payload, limit, self.image_formats)
        if image_format not in TORCHVISION_FORMATS or is_16_bit_png(payload):
            # torchvision would decode a 16-bit PNG as a uint16 RGB copy (6 bytes a pixel) and
            # scale it in one piece: Pillow's decoder and a band-wise conversion cost far less.
            return rgb_tensor(decode_image(payload, limit, self.image_formats))
        encoded = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        try:  # upright as the camera asked, like the PIL path (TorchServe ignores EXIF)
            image = torchvision.io.decode_image(
                encoded, mode=torchvision.io.ImageReadMode.RGB, apply_exif_orientation=True
            )
        except RuntimeError as err:
            reason = re.sub(r"^.*\.cpp:\d+, ", "", str(err))  # drop torchvision's source location
            raise RequestError(f"broken {image_format} image: {reason}") from None
        if image.ndim == 4:  # an animated GIF: (frames, 3, H, W); Pillow gives the first frame
            image = image[0]
        if image.dtype != torch.uint8:  # 16-bit PNGs decode to uint16
            image = TF.to_dtype(image, torch.uint8, scale=True)
        return image

    def resize(self, image: torch.Tensor) -> torch.Tensor:
        """Shorter side to `resize_to`, bilinear with antialiasing (as Pillow's Resize)."""
        check_resize((image.shape[-1], image.shape[-2]), self.resize_to)  # refuse thin strips
        return TF.resize(image, [self.resize_to], antialias=True)

    def center_crop(self, image: torch.Tensor) -> torch.Tensor:
        return TF.center_crop(image, [self.crop_to, self.crop_to])

    def finish(self, images: torch.Tensor, row: int | None = None) -> torch.Tensor:
        """uint8 images -> floats in 0..1 (ToTensor's scaling) -> normalized with mean and std."""
        images = self.step("ToDtype", _to_float, images, row)
        return self.step("Normalize", self.normalize, images, row)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return TF.normalize(images, self.mean, self.std)


def rgb_tensor(image) -> torch.Tensor:
    """A Pillow image of any 8-bit mode -> uint8 (3, H, W) RGB, as `pil_to_tensor(convert("RGB"))`.

    Converts a band of rows at a time into the tensor, so the whole RGB copy of a large image and
    its tensor are never alive together (an 81-megapixel upload: 243 MB less at the peak).
    """
    width, height = image.size
    out = torch.empty((height, width, 3), dtype=torch.uint8)
    rows = max(1, BAND_PIXELS // max(1, width))
    for top in range(0, height, rows):
        band = convert_mode(image.crop((0, top, width, min(height, top + rows))), "RGB")
        out[top : top + band.height] = torch.from_numpy(np.array(band))
    return out.permute(2, 0, 1)


def is_16_bit_png(data: bytes | bytearray) -> bool:
    """Whether a PNG's header says 16 bits per sample (byte 24, the IHDR chunk's bit depth)."""
    return bytes(data[:8]) == b"\x89PNG\r\n\x1a\n" and len(data) > 24 and data[24] == 16


def read_header(
    data: bytes | bytearray,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: tuple[str, ...] = IMAGE_FORMATS,
) -> str:
    """The image format from the header (no pixels decoded); refuses non-images and bombs."""
    with open_image(data, max_pixels, formats) as image:
        return image.format


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return TF.to_dtype(images, torch.float32, scale=True)


def compare_paths(reference: ImageClassifier, fast: TensorImageClassifier, rows: list) -> dict:
    """How close the tensor path comes to the PIL path on the same rows.

    Args:
        reference: an initialized `ImageClassifier` (the exact mirror of TorchServe).
        fast: an initialized `TensorImageClassifier` on the same model folder.
        rows: request rows, e.g. `[{"data": samples.photo_bytes(name)}, ...]`.

    Returns:
        A dict: `max_abs_diff` between the two input batches (after Normalize), `grey_levels`
        (the same difference before Normalize, in steps of 1/255), `top1` and `top5` (how many
        rows get the same best label / the same five labels in the same order), `max_prob_diff`
        (the largest difference of a top-5 probability), and `rows`.
    """
    with torch.inference_mode():
        pil_batch, tensor_batch = reference.preprocess(rows), fast.preprocess(rows)
        diff = (pil_batch - tensor_batch).abs().cpu()
        pil_answers = reference.postprocess(reference.inference(pil_batch))
        tensor_answers = fast.postprocess(fast.inference(tensor_batch))
    std = torch.tensor(fast.std).view(1, -1, 1, 1)
    pairs = list(zip(pil_answers, tensor_answers))
    return {
        "max_abs_diff": diff.max().item(),
        "grey_levels": (diff * std * 255).max().item(),
        "top1": sum(list(a)[0] == list(b)[0] for a, b in pairs),
        "top5": sum(list(a) == list(b) for a, b in pairs),
        "max_prob_diff": max(
            abs(p - b.get(label, 0.0)) for a, b in pairs for label, p in a.items()
        ),
        "rows": len(pairs),
    }
