"""DigitPlayground driven from Python, as ipywidgets 8 delivers an upload (memoryview contents)."""

from __future__ import annotations

import datetime
import io

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
    from handlerkit.show.widgets import _png

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


def _pad_as_drawn(widget: DigitPlayground, monkeypatch) -> dict:
    """Follow the commands the pad sends to the browser: {"ink": whether strokes are visible}.

    A stroke puts ink on the pad; a white rectangle over the whole pad wipes it.
    """
    from ipycanvas.canvas import COMMANDS, Canvas

    names = {index: name for name, index in COMMANDS.items()}
    attrs = {index: name for name, index in Canvas.ATTRS.items()}
    pad = {"ink": False, "fill_style": "black"}
    manager, send = widget.pad._canvas_manager, widget.pad._canvas_manager.send_command

    def follow(canvas, command, buffers=[]):  # noqa: B006 - ipycanvas's own signature
        if canvas is widget.pad:
            name, args = names[command[0]], command[1]
            if name == "set":
                pad[attrs[args[0]]] = args[1]
            elif name in ("fillCircle", "strokeLine"):
                pad["ink"] = True
            elif name == "fillRect" and list(args) == [0, 0, widget.pad.width, widget.pad.height]:
                pad["ink"] = pad["fill_style"] != "white"
        return send(canvas, command, buffers)

    monkeypatch.setattr(manager, "send_command", follow)
    return pad


def _stroke(widget: DigitPlayground, points) -> None:
    """A pen stroke through `points`, as the browser reports the mouse to the kernel."""
    events = ["mouse_down"] + ["mouse_move"] * (len(points) - 1) + ["mouse_up"]
    for event, (x, y) in zip(events, [*points, points[-1]]):
        widget.pad._handle_frontend_event(None, {"event": event, "x": x, "y": y}, [])


def test_an_upload_wipes_the_old_drawing_off_the_pad(playground, monkeypatch):
    pad = _pad_as_drawn(playground, monkeypatch)
    _stroke(playground, [(140, 40), (140, 240)])
    assert pad["ink"]
    _upload(playground, _photo_of_digit(2010))
    assert not pad["ink"], "the pad still shows the drawing beside the upload's answer"
    assert "from your upload" in playground.status.value  # wiping it left the answer alone


def test_a_bad_upload_wipes_the_pad_too(playground, monkeypatch):
    pad = _pad_as_drawn(playground, monkeypatch)
    _stroke(playground, [(100, 100), (180, 180)])
    _upload(playground, b"hello")
    assert not pad["ink"]
    assert "Could not classify this upload" in playground.status.value


def _axes_images(fig) -> list:
    return [image.get_array() for ax in fig.axes for image in ax.get_images()]


def test_snapshot_draws_what_the_widget_shows(playground):
    import matplotlib.pyplot as plt

    from handlerkit.show.widgets import _png_image

    data = _photo_of_digit(3515)
    _upload(playground, data)
    fig = playground.snapshot()
    try:
        assert f"Prediction: {playground.prediction}" in fig._suptitle.get_text()
        assert "<" not in fig._suptitle.get_text()  # the status line without its HTML
        sent, bars, steps = _axes_images(fig)
        assert np.array_equal(sent, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        shown = np.asarray(_png_image(playground.bars.value).convert("RGB"))
        assert np.array_equal(bars, shown)  # the widget's own pictures, pixel for pixel
        shown = np.asarray(_png_image(playground.figure.children[0].value).convert("RGB"))
        assert np.array_equal(steps, shown)
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[0] == "your upload, as sent"
    finally:
        plt.close(fig)
    playground.explain()
    fig = playground.snapshot()
    assert len(_axes_images(fig)) == 4  # the explanation, below the steps
    plt.close(fig)


def test_snapshot_of_a_failed_upload_or_a_fresh_widget_says_so():
    import matplotlib.pyplot as plt

    widget = DigitPlayground()
    fig = widget.snapshot()
    assert "Upload an image of a digit" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
    _upload(widget, b"hello")
    fig = widget.snapshot()
    assert "not an image" in fig.axes[0].texts[0].get_text()
    assert not _axes_images(fig)
    plt.close(fig)
