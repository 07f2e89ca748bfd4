"""The tensor fast path: close to the PIL path, same answers, same per-row errors, traced steps."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

import handlerkit
from handlerkit import Context, ImageClassifier, samples
from handlerkit.handlers import tensor_classifier
from handlerkit.handlers.tensor_classifier import TensorImageClassifier, compare_paths

# Tolerance: torch's antialiased bilinear resize of uint8 rounds like Pillow's but not always to
# the same grey level, so an input may differ by one step of 1/255 before Normalize, which is
# 1 / 255 / 0.224 (the smallest ImageNet std) = 0.0175 after it.
MAX_GREY_LEVELS = 1.0
MAX_ABS_DIFF = 1 / 255 / 0.224 + 1e-4


@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory):
    """Both paths on the EfficientNet-Lite0 folder (real ImageNet weights, offline)."""
    folder = samples.efficientnet_folder(tmp_path_factory.mktemp("efficientnet"))
    context = Context.local(folder)
    pil, fast = ImageClassifier(), TensorImageClassifier()
    pil.initialize(context)
    fast.initialize(context)
    return pil, fast, context


@pytest.fixture(scope="module")
def fast_densenet(densenet_dir):
    return TensorImageClassifier.for_folder(densenet_dir)


def test_inputs_are_within_one_grey_level_of_the_pil_path(efficientnet, photo_rows):
    pil, fast, _ = efficientnet
    closeness = compare_paths(pil, fast, photo_rows)
    assert closeness["rows"] == len(samples.PHOTO_NAMES) == 5
    assert closeness["grey_levels"] <= MAX_GREY_LEVELS + 1e-3
    assert closeness["max_abs_diff"] <= MAX_ABS_DIFF


def test_same_top1_and_top5_as_the_pil_path_on_the_sample_photos(efficientnet, photo_rows):
    pil, fast, context = efficientnet
    closeness = compare_paths(pil, fast, photo_rows)
    assert (closeness["top1"], closeness["top5"]) == (5, 5)
    assert closeness["max_prob_diff"] < 0.01
    pil_answers, fast_answers = pil.handle(photo_rows, context), fast.handle(photo_rows, context)
    assert [list(a) for a in fast_answers] == [list(a) for a in pil_answers]
    assert "Egyptian cat" in fast_answers[0] and "espresso" in fast_answers[1]


def test_batch_tensor_matches_the_pil_path_in_shape_dtype_and_device(efficientnet, photo_rows):
    pil, fast, _ = efficientnet
    batch = fast.preprocess(photo_rows)
    reference = pil.preprocess(photo_rows)
    assert (batch.shape, batch.dtype, batch.device) == (
        reference.shape,
        reference.dtype,
        reference.device,
    )


def _encoded(mode: str, fmt: str) -> bytes:
    image = samples.photo("chelsea")
    image = (
        image.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else image.convert(mode)
    )
    return samples.encode(image, fmt)


@pytest.mark.parametrize(
    "mode, fmt",
    [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("CMYK", "JPEG"), ("RGB", "BMP")],
)
def test_other_modes_and_formats_decode_as_their_rgb_conversion(fast_densenet, mode, fmt):
    handler, _ = fast_densenet
    data = _encoded(mode, fmt)
    rgb = samples.encode(Image.open(io.BytesIO(data)).convert("RGB"), "PNG")
    assert handler.decode(data).equal(handler.decode(rgb))  # BMP: decoded by Pillow instead


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "RGB", "I;16"])
def test_a_pillow_image_becomes_its_rgb_tensor_band_by_band(monkeypatch, mode):
    monkeypatch.setattr(
        tensor_classifier, "BAND_PIXELS", 5000
    )  # 11 rows a band: many bands, a short one
    image = samples.photo("chelsea")
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
        image.info["transparency"] = 0
    elif mode == "I;16":
        image = image.convert("L")
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
        image = tensor_classifier.decode_image(
            samples.encode(image, "PNG")
        )  # scaled back to 8 bits
    else:
        image = image.convert(mode)
    expected = TF.pil_to_tensor(image.convert("RGB"))
    assert tensor_classifier.rgb_tensor(image).equal(expected)


def _png_16_bit_rgb(pixels: np.ndarray) -> bytes:
    """A 48-bit RGB PNG written by hand (Pillow writes 16-bit grey only)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))


def test_16_bit_pngs_decode_as_the_8_bit_image_they_scale_to(fast_densenet):
    handler, _ = fast_densenet
    rgb = np.asarray(samples.photo("chelsea").convert("RGB").resize((64, 48)))
    sixteen_rgb = _png_16_bit_rgb(rgb.astype(np.uint32) * 257)
    grey = rgb[..., 0]
    sixteen_grey = samples.encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")
    assert tensor_classifier.is_16_bit_png(sixteen_rgb) and tensor_classifier.is_16_bit_png(
        sixteen_grey
    )
    assert not tensor_classifier.is_16_bit_png(samples.encode(Image.fromarray(grey), "PNG"))
    assert handler.decode(sixteen_rgb).equal(torch.from_numpy(rgb.copy()).permute(2, 0, 1))
    assert handler.decode(sixteen_grey).equal(torch.from_numpy(grey.copy()).expand(3, -1, -1))


def test_bad_rows_get_their_own_error_and_the_rest_are_answered(fast_densenet, photo_rows):
    from tests.handlers.test_bad_input import _png_bomb, check_bad_rows_are_answered_alone

    check_bad_rows_are_answered_alone(*fast_densenet, photo_rows[0], _png_bomb())


def test_a_list_payload_is_taken_as_the_model_ready_tensor(efficientnet, photo_rows):
    pil, fast, context = efficientnet
    ready = pil.preprocess(photo_rows[1:2])[0].tolist()
    mixed = fast.handle([photo_rows[0], {"data": ready}], context)
    assert list(mixed[1]) == list(pil.handle(photo_rows[1:2], context)[0])
    assert list(mixed[0]) == list(fast.handle(photo_rows[:1], context)[0])


def test_every_step_is_traced(fast_densenet, photo_rows):
    handler, context = fast_densenet
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[:2], context)
    per_image = ["decode", "to_device", "Resize", "CenterCrop"]
    assert [(r.stage, r.row) for r in t] == (
        [("preprocess", None)]
        + [(step, 0) for step in per_image]
        + [(step, 1) for step in per_image]
        + [("stack", None), ("ToDtype", None), ("Normalize", None)]
        + [("inference", None), ("postprocess", None)]
    )
    assert t.find("decode", row=0).shape == (3, 300, 451)
    assert t.find("Resize", row=0).shape == (3, 256, 384)
    crop = t.find("CenterCrop", row=1)
    assert (crop.dtype, crop.shape) == ("uint8", (3, 224, 224))
    assert t.find("stack").shape == (2, 3, 224, 224) and t.find("stack").dtype == "uint8"
    assert t.find("ToDtype").output.max() <= 1.0
    assert t.find("Normalize").output.equal(t.find("inference").input)


def test_tracing_never_changes_an_answer(fast_densenet, photo_rows):
    handler, context = fast_densenet
    plain = handler.handle(photo_rows, context)
    with handlerkit.trace(handler, capture="summary"):
        assert handler.handle(photo_rows, context) == plain


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_transforms_run_on_the_gpu(densenet_dir, fast_densenet, photo_rows):
    cpu_handler, _ = fast_densenet
    handler, context = TensorImageClassifier.for_folder(densenet_dir, gpu_id=0)
    with handlerkit.trace(handler, capture="summary") as t:
        batch = handler.preprocess(photo_rows)
    assert batch.device.type == "cuda"
    assert t.find("decode", row=0).device == "cpu"
    assert t.find("Resize", row=0).device.startswith("cuda")
    assert (batch.cpu() - cpu_handler.preprocess(photo_rows)).abs().max() <= MAX_ABS_DIFF
