"""The MNIST handlers: the mirror of TorchServe's MNIST example, and the upload-ready one."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import handlerkit
from handlerkit import UploadedDigitClassifier, samples
from handlerkit.loading import import_one_class
from tests.fixtures.reference import torchserve_mnist_class, ts_initialize

HELD_OUT = list(range(0, 5000, 5))  # every fifth digit is never trained on


def torchserve_mnist_handler():
    """TorchServe's MNIST example handler, rebuilt on the real `ts` ImageClassifier."""
    return torchserve_mnist_class()()


@pytest.fixture(scope="module")
def ts_mnist():
    return ts_initialize(torchserve_mnist_handler(), samples.MNIST_DIR)


@pytest.mark.parametrize("key", ["data", "body"])
def test_mnist_handler_matches_torchserve_example_on_mnist_pngs(mnist, ts_mnist, key):
    handler, context = mnist
    ts_handler, ts_ctx = ts_mnist
    rows = [{key: samples.digit_png(i)} for i in HELD_OUT[::10]]
    answers = handler.handle(rows, context)
    assert answers == ts_handler.handle(rows, ts_ctx)
    for row in rows[:5]:
        assert handler.handle([row], context) == ts_handler.handle([row], ts_ctx)
    labels = [samples.digit_label(i) for i in HELD_OUT[::10]]
    assert sum(a == y for a, y in zip(answers, labels)) >= 0.95 * len(labels)


def test_mnist_handler_converts_a_colour_digit_where_torchserve_crashes(mnist, ts_mnist):
    handler, context = mnist
    ts_handler, ts_ctx = ts_mnist
    rgb = samples.encode(samples.digit(HELD_OUT[3]).convert("RGB"))
    gray = samples.digit_png(HELD_OUT[3])
    assert handler.handle([{"data": rgb}], context) == handler.handle([{"data": gray}], context)
    with pytest.raises(RuntimeError):
        ts_handler.handle([{"data": rgb}], ts_ctx)


def test_uploaded_digit_answer_shape_and_errors(uploads):
    handler, context = uploads
    blank = samples.encode(Image.new("RGB", (200, 200), "white"))
    rows = [{"data": samples.digit_png(HELD_OUT[7])}, {"data": blank}, {"data": b"nope"}]
    answers = handler.handle(rows, context.for_requests([{}] * 3))
    assert set(answers[0]) == {"digit", "probabilities"}
    assert answers[0]["digit"] == samples.digit_label(HELD_OUT[7])
    assert len(answers[0]["probabilities"]) == 10
    assert abs(sum(answers[0]["probabilities"]) - 1) < 1e-5
    assert answers[1] == {"error": "no ink found: the image is blank"}
    assert "not an image" in answers[2]["error"]
    assert context.response_status[1][0] == 400 and context.response_status[2][0] == 400


def test_a_photo_like_upload_fails_the_example_handler_but_not_the_upload_handler(mnist, uploads):
    """Dark ink on white paper, large and off-centre: what a phone photo of a digit looks like."""
    mnist_handler, context = mnist
    upload_handler, _ = uploads
    correct_upload = 0
    for index in HELD_OUT[::25]:
        ink = Image.eval(samples.digit(index), lambda v: 255 - v).resize((160, 160))
        paper = Image.new("L", (400, 300), 235)
        paper.paste(ink, (40, 90))
        data = samples.encode(paper.convert("RGB"), "JPEG")
        label = samples.digit_label(index)
        example = mnist_handler.handle([{"data": data}], context)[0]
        assert "cannot run on this input of shape (1, 300, 400)" in example["error"]
        correct_upload += upload_handler.handle([{"data": data}], context)[0]["digit"] == label
    assert correct_upload >= 0.95 * len(HELD_OUT[::25])


def test_a_wrong_sized_image_in_a_batch_fails_alone(mnist):
    handler, context = mnist
    big = samples.encode(samples.digit(HELD_OUT[0]).resize((56, 56)))
    rows = [{"data": samples.digit_png(i)} for i in HELD_OUT[:3]]
    answers = handler.handle(rows[:2] + [{"data": big}] + rows[2:], context)
    assert "shape (1, 56, 56)" in answers[2]["error"]
    assert answers[:2] + answers[3:] == handler.handle(rows, context)


def test_upload_steps_are_traced(uploads):
    handler, context = uploads
    ink = (
        Image.eval(samples.digit(HELD_OUT[1]), lambda v: 255 - v).resize((120, 120)).convert("RGBA")
    )
    with handlerkit.trace(handler) as t:
        handler.handle([{"data": samples.encode(ink)}], context)
    steps = [r.stage for r in t if r.row == 0]
    assert steps == [
        "decode",
        "flatten_alpha",
        "grayscale",
        "invert_if_light",
        "crop_to_ink",
        "fit_20x20",
        "center_by_mass",
        "to_tensor",
        "normalize",
    ]
    assert t.find("center_by_mass").shape == (28, 28, 1)
    assert t.find("normalize").shape == (1, 28, 28)


def test_model_folder_handler_is_one_upload_handler_class():
    handler_class = import_one_class(samples.MNIST_DIR / "handler.py")  # raises unless one
    assert issubclass(handler_class, UploadedDigitClassifier)
    handler, context = handler_class.for_folder(samples.MNIST_DIR)
    png = io.BytesIO()
    samples.digit(HELD_OUT[2]).save(png, format="PNG")
    assert handler.handle([{"body": png.getvalue()}], context)[0]["digit"] == samples.digit_label(
        HELD_OUT[2]
    )
