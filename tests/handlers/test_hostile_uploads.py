"""Hostile and awkward uploads (issue 15): right answers, clear errors, bounded work.

One test per defect class: the batch's shape, 16-bit and float images, EXIF orientation, base64
as tools write it, NaN rows, model faults, tiny files that cost gigabytes, the pixel-limit
setting, the format allow-list, and the playground with another handler.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handlerkit import (
    Context,
    ImageClassifier,
    MNISTDigitClassifier,
    UploadedDigitClassifier,
    samples,
)
from handlerkit.handlers.tensor_classifier import TensorImageClassifier
from handlerkit.images import decode_image, open_image
from tests.fixtures.upload_budget import EPS

DIGIT = 1000  # an MNIST "2" (the samples are sorted by class, 500 each)


def _statuses(context) -> dict[int, int]:
    return {i: code for i, (code, _) in context.response_status.items()}


# 1. the batch's shape comes from the pipeline or the model, never from a vote of the rows
def test_a_good_row_is_answered_whatever_its_neighbours_shapes(mnist, uploads):
    digit = {"data": samples.digit_png(DIGIT)}
    junk = {"data": [[0.0, 1.0], [2.0, 3.0]]}
    for handler, context in (mnist, uploads):
        alone = handler.handle([digit], context)
        answers = handler.handle([junk, digit, junk], context.for_requests([{}] * 3))
        assert answers[1] == alone[0]
        assert "shape (2, 2)" in answers[0]["error"] and "shape (2, 2)" in answers[2]["error"]
        assert _statuses(context) == {0: 400, 2: 400}
    # no image row to set the shape: the model decides which shape it takes
    handler, context = mnist
    ready = {"data": handler.preprocess([digit])[0].tolist()}
    answers = handler.handle([junk, junk, ready], context)
    assert answers[2] == handler.handle([digit], context)[0]
    assert "the model cannot run on this input of shape (2, 2)" in answers[0]["error"]


# 2. 16-bit and float images are scaled to 8 bits by their own range, not clipped
def test_16_bit_and_float_images_are_scaled_like_a_viewer_shows_them(mnist, uploads):
    digit = np.asarray(samples.digit(DIGIT))
    sixteen = Image.fromarray(digit.astype(np.uint16) * 257)  # 0..65535, mode I;16
    floats = Image.fromarray(digit.astype(np.float32) / 255)  # 0..1, mode F
    rows = [
        {"data": samples.digit_png(DIGIT)},
        {"data": samples.encode(sixteen, "PNG")},
        {"data": samples.encode(floats, "TIFF")},
    ]
    assert Image.open(io.BytesIO(rows[1]["data"])).mode.startswith("I;16")
    for handler, context in (mnist, uploads):
        assert np.array_equal(np.asarray(handler.decode(rows[1]["data"])), digit)
        answers = handler.handle(rows, context)
        assert answers[1] == answers[0] and answers[2] == answers[0]


# 3. EXIF orientation is applied on both preprocessing paths (TorchServe ignores it)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_photo_stored_sideways_is_classified_upright(densenet, densenet_dir, fmt):
    upright = samples.photo("chelsea")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    sideways = samples.encode(stored, fmt, exif=exif)
    plain = samples.encode(upright, fmt)
    handler, context = densenet
    if fmt == "PNG":  # lossless: the upright pixels exactly
        assert handler.handle([{"data": sideways}], context) == handler.handle(
            [{"data": plain}], context
        )
    assert handler.decode(sideways).size == upright.size
    fast = TensorImageClassifier()
    fast.initialize(Context.local(densenet_dir))
    assert fast.decode(sideways).shape[1:] == (upright.height, upright.width)
    if fmt == "PNG":
        assert fast.decode(sideways).equal(fast.decode(plain))


# 4. base64 as tools write it: MIME line breaks and data URLs
def test_mime_wrapped_base64_and_data_urls_are_accepted(mnist):
    handler, context = mnist
    raw = samples.digit_png(DIGIT)
    wrapped = base64.encodebytes(raw).decode()  # a newline every 76 characters
    assert "\n" in wrapped.strip()
    url = "data:image/png;base64," + base64.b64encode(raw).decode()
    rows = [{"data": raw}, {"data": wrapped}, {"data": url}, {"data": "%%% not base64"}]
    answers = handler.handle(rows, context.for_requests([{}] * 4))
    assert answers[1] == answers[0] and answers[2] == answers[0]
    assert "not valid base64" in answers[3]["error"]
    assert _statuses(context) == {3: 400}


# 5. NaN and infinity in a list row are refused, naming the problem
def test_nan_or_infinite_list_rows_are_refused(mnist):
    handler, context = mnist
    digit = {"data": samples.digit_png(DIGIT)}
    ready = handler.preprocess([digit])[0]
    rows = []
    for bad in (float("nan"), float("inf"), float("-inf")):
        tensor = ready.clone()
        tensor[0, 14, 14] = bad
        rows.append({"data": tensor.tolist()})
    answers = handler.handle([*rows, digit], context.for_requests([{}] * 4))
    assert all("NaN or infinite" in a["error"] for a in answers[:3])
    assert _statuses(context) == {0: 400, 1: 400, 2: 400}
    assert answers[3] == handler.handle([digit], context)[0]


# 6. a model that fails on every row is a server fault (500), a row that fails alone a 400
def test_a_model_failing_on_every_row_is_a_500_not_a_400_per_row(mnist):
    handler, context = mnist
    photo = samples.encode(Image.new("L", (400, 300), 30))  # TorchServe's example: 28x28 only
    rows = [{"data": photo}, {"data": photo}]
    answers = handler.handle(rows, context.for_requests([{}] * 2))
    assert _statuses(context) == {0: 500, 1: 500}
    assert all("failed on every request of this batch" in a["error"] for a in answers)
    digit = {"data": samples.digit_png(DIGIT)}
    answers = handler.handle([rows[0], digit], context.for_requests([{}] * 2))
    assert _statuses(context) == {0: 400}
    assert "cannot run on this input of shape (1, 300, 400)" in answers[0]["error"]
    assert answers[1] == handler.handle([digit], context)[0]


def test_a_broken_model_is_a_500_for_every_row(densenet_dir, photo_rows):
    handler, context = ImageClassifier.for_folder(densenet_dir)
    handler.model.classifier = torch.nn.Linear(3, 1000)  # the wrong head: fails on any input
    answers = handler.handle(photo_rows[:3], context.for_requests([{}] * 3))
    assert _statuses(context) == {0: 500, 1: 500, 2: 500}
    assert all("failed on every request" in a["error"] for a in answers)


# 7. tiny files that would cost gigabytes: the work is bounded by what the pipeline makes
def test_a_thin_strip_is_refused_before_resize_blows_it_up(densenet, densenet_dir):
    strip = samples.zeros_png(4000, 1)
    assert len(strip) < 100
    fast = TensorImageClassifier()
    fast.initialize(Context.local(densenet_dir))
    for handler, context in (densenet, (fast, densenet[1])):
        started = time.perf_counter()
        answer = handler.handle([{"data": strip}], context.for_requests([{}]))[0]
        assert time.perf_counter() - started < 1.0
        assert "Resize(256) would make this 4000x1 image 1024000x256" in answer["error"]
        assert _statuses(context) == {0: 413}


def test_a_tiny_jpeg_declaring_9000x9000_is_decoded_small_by_the_upload_handler(uploads):
    handler, context = uploads
    data = samples.jpeg_declaring(9000, 9000)
    assert len(data) < 1000
    assert max(handler.decode(data).size) < 2048  # 1/8 scale: 1125x1125, not 81 MP
    started = time.perf_counter()
    handler.handle([{"data": data}], context)
    assert time.perf_counter() - started < 1.0


# 8. the pixel-limit setting is the only limit, and the message names one limit
def test_the_pixel_limit_setting_is_honoured_above_pillows_own(densenet_dir):
    big = samples.zeros_png(15_000, 12_000, depth=1)  # 180 MP: over Pillow's own 179 MP check
    saved = Image.MAX_IMAGE_PIXELS
    assert open_image(big, max_pixels=None).size == (15_000, 12_000)
    assert open_image(big, max_pixels=200_000_000).size == (15_000, 12_000)
    assert Image.MAX_IMAGE_PIXELS == saved  # Pillow's setting is left as it was
    handler = ImageClassifier()
    context = Context.local(densenet_dir, limit_max_image_pixels=100_000_000)
    handler.initialize(context)
    error = handler.handle([{"data": big}], context)[0]["error"]
    assert error.startswith(
        "image is 15000x12000 = 180,000,000 pixels, over the limit of 100,000,000"
    )
    assert "178" not in error  # Pillow's own limit is not quoted too


# 9. only image formats are opened; the refusal names the format
def test_formats_outside_the_allow_list_are_refused_by_name(densenet):
    handler, context = densenet
    icon = samples.encode(samples.photo("chelsea").resize((64, 64)), "ICO")
    rows = [{"data": EPS}, {"data": icon}]
    answers = handler.handle(rows, context.for_requests([{}] * 2))
    assert answers[0]["error"].startswith("EPS images are not accepted; send one of JPEG, PNG")
    assert answers[1]["error"].startswith("ICO images are not accepted")
    assert _statuses(context) == {0: 415, 1: 415}
    photo = samples.photo("chelsea")
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM"):  # the allow-list
        assert decode_image(samples.encode(photo, fmt)).size == photo.size, fmt


# 11. the playground with another handler: its own folder, its own answer format
def test_the_playground_runs_any_handler_on_its_own_folder(densenet):
    from handlerkit.widgets import DigitPlayground

    handler, context = densenet
    widget = DigitPlayground(handler=handler)
    assert Path(widget.context.model_dir) == Path(context.model_dir)
    answer = widget.classify(samples.photo_bytes("chelsea"))
    assert widget.prediction == next(iter(answer)) and widget.bars.value
    mnist = MNISTDigitClassifier.for_folder(samples.MNIST_DIR)[0]
    example = DigitPlayground(handler=mnist)  # answers a bare int, as TorchServe's example
    assert example.classify(samples.digit_png(DIGIT)) == samples.digit_label(DIGIT)
    assert example.prediction == samples.digit_label(DIGIT)
    own = Context.local(samples.MNIST_DIR)
    assert DigitPlayground(handler=UploadedDigitClassifier(), context=own).context is own


# the hostile files themselves (samples, shared by the bench, the tests and notebook 09)
def test_hostile_samples_are_what_their_headers_say():
    small = samples.zeros_png(300, 200, depth=16)
    image = Image.open(io.BytesIO(small))
    assert image.size == (300, 200) and image.mode.startswith("I;16")
    assert np.asarray(image).max() == 0  # valid pixels: all zeros
    rgba = Image.open(io.BytesIO(samples.zeros_png(40, 30, colour=6)))
    assert (rgba.mode, rgba.size) == ("RGBA", (40, 30))
    bomb = samples.zeros_png(30_000, 30_000, depth=1)
    assert len(bomb) < 120_000 and open_image(bomb, max_pixels=None).size == (30_000, 30_000)
    jpeg = samples.jpeg_declaring(9000, 6000)
    assert len(jpeg) < 1000 and open_image(jpeg).size == (9000, 6000)
