"""DigitPlayground driven from Python, as ipywidgets 8 delivers an upload (memoryview contents)."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handlerkit import samples
from handlerkit.widgets import DigitPlayground


@pytest.fixture(scope="module")
def playground():
    return DigitPlayground()


def _upload(widget: DigitPlayground, data: bytes, name: str = "digit.png") -> None:
    widget.upload.value = (
        {
            "name": name,
            "type": "image/png",
            "size": len(data),
            "content": memoryview(data),
            "last_modified": datetime.datetime(2026, 11, 25, tzinfo=datetime.timezone.utc),
        },
    )


def _photo_of_digit(index: int) -> bytes:
    ink = Image.eval(samples.digit(index), lambda v: 255 - v).resize((180, 180))
    paper = Image.new("RGB", (320, 260), (240, 238, 230))
    paper.paste(ink.convert("RGB"), (90, 50))
    return samples.encode(paper, "JPEG")


@pytest.mark.parametrize("index", [5, 1005, 2010, 3515, 4995])
def test_upload_ends_in_the_right_prediction(playground, index):
    _upload(playground, _photo_of_digit(index))
    assert playground.prediction == samples.digit_label(index)
    assert f"Prediction: {playground.prediction}" in playground.status.value
    assert len(playground.figure.children) == 1 and playground.bars.value  # steps and bars
    assert playground.trace.find("center_by_mass").shape == (28, 28, 1)


@pytest.mark.parametrize(
    "data, message",
    [(b"hello", "not an image"), (samples.encode(Image.new("L", (50, 50), 255)), "blank")],
)
def test_bad_upload_shows_a_message_not_a_traceback(playground, data, message):
    _upload(playground, data)
    assert playground.prediction is None
    assert "Could not classify this upload" in playground.status.value
    assert message in playground.status.value
    assert "Traceback" not in playground.status.value


def test_a_drawing_is_classified_like_an_upload(playground):
    """The pad's RGBA pixels, as the browser syncs them, go through the same handler."""
    pad = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    ImageDraw.Draw(pad).line([(140, 40), (140, 240)], fill=(0, 0, 0, 255), width=22)
    from handlerkit.widgets import _png

    answer = playground.classify(_png(np.asarray(pad)), source="drawing")
    assert answer["digit"] == 1 and playground.prediction == 1
    assert "from your drawing" in playground.status.value


def test_explain_shows_what_the_model_looked_at_for_the_predicted_digit(playground):
    _upload(playground, samples.digit_png(1200))
    predicted = playground.prediction
    playground.explain_button.click()
    assert np.asarray(playground.attributions).shape == (1, 28, 28)
    assert bytes(playground.explanation.value).startswith(b"\x89PNG")
    assert playground.prediction == predicted  # explaining does not change the answer
    first = np.asarray(playground.attributions)
    other = playground.explain(target=(predicted + 1) % 10)
    assert not np.array_equal(np.asarray(other), first)  # another class, other evidence
