"""Drawings: each viz function returns a titled figure built from trace records; the CLI runs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import handlerkit  # noqa: E402
from handlerkit.__main__ import main  # noqa: E402
from handlerkit.show import viz  # noqa: E402


@pytest.fixture(scope="module")
def traced(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler, layers=["features.denseblock1"]) as t:
        answers = handler.handle(photo_rows[:2], context)
    return t, answers


def _titles(fig):
    return [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""]


def test_every_drawing_is_titled_with_its_stage(traced):
    t, answers = traced
    figures = {
        "steps": viz.show_steps(t, row=1),
        "channels": viz.show_channels(t.find("ToTensor", row=0).output, "ToTensor: channels"),
        "histogram": viz.show_histogram(t.find("Normalize", row=0).output, "Normalize"),
        "topk": viz.show_topk(answers[0]),
        "logits": viz.show_logits(t.find("inference").output),
        "features": viz.show_feature_maps(t.find("features.denseblock1").output, "denseblock1"),
        "timeline": viz.show_timeline(t),
        "trace": t.show(row=1),
    }
    assert "Resize\nPIL RGB 256x384x3" in _titles(figures["steps"])
    assert any(title.startswith("R: ") for title in _titles(figures["channels"]))
    assert "Normalize: mean" in _titles(figures["histogram"])[0]
    assert [t.get_text() for t in figures["topk"].axes[0].get_yticklabels()] == list(answers[0])[
        ::-1
    ]
    assert "the first 16 of 256 channels, each 56x56" in _titles(figures["features"])[-1]
    assert len(figures["steps"].axes) == 6
    for fig in figures.values():
        plt.close(fig)


def test_cli_trace_prints_the_table_and_saves_the_figure(tmp_path, capsys):
    out = tmp_path / "trace.png"
    assert main(["trace", "rocket", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Normalize" in printed and "inference" in printed and "missile" in printed
    assert out.stat().st_size > 10_000


def test_trace_show_draws_digit_answers():
    from handlerkit import Context, MNISTDigitClassifier, UploadedDigitClassifier, samples

    for handler in (UploadedDigitClassifier(), MNISTDigitClassifier()):
        context = Context.local(samples.MNIST_DIR)
        handler.initialize(context)
        with handlerkit.trace(handler) as t:
            handler.handle([{"data": samples.digit_png(10)}], context)
        fig = t.show()
        titles = [ax.get_title() for ax in fig.axes] + [_texts(fig)]
        assert any(title.startswith("postprocess: ") for title in titles), titles
        plt.close(fig)


def _texts(fig) -> str:
    return " ".join(text.get_text() for ax in fig.axes for text in ax.texts)


def _bars(fig) -> list[float]:
    return [patch.get_width() for ax in fig.axes for patch in ax.patches]


def test_a_bare_digit_is_drawn_as_returned_not_as_a_probability():
    """The MNIST example answers 7, not {"digit 7": 1.0}: no bar at a confidence never returned."""
    from handlerkit import Context, MNISTDigitClassifier, samples

    handler, context = MNISTDigitClassifier(), Context.local(samples.MNIST_DIR)
    handler.initialize(context)
    with handlerkit.trace(handler) as t:
        (answer,) = handler.handle([{"data": samples.digit_png(10)}], context)
    fig = t.show()
    assert isinstance(answer, int) and f"postprocess: answer:\n{answer}" in _texts(fig)
    answer_axes = [ax for ax in fig.axes if ax.get_title().startswith("postprocess")]
    assert answer_axes == []  # text, not a bar chart titled with the answer
    assert 1.0 not in _bars(fig)
    plt.close(fig)


class _Returns:
    """A handler whose postprocess returns `value` (any shape TorchServe would refuse)."""

    def __init__(self, value):
        self.value = value

    def handle(self, data, context):
        return self.postprocess(self.inference(self.preprocess(data)))

    def preprocess(self, data):
        import torch

        return torch.zeros(len(data), 3)

    def inference(self, x):
        return x + 1

    def postprocess(self, y):
        return self.value


@pytest.mark.parametrize(
    "value",
    [
        {"digit": 7},  # a dict instead of a list: KeyError 0 before
        None,  # a forgotten return
        (i for i in range(2)),  # a generator
        "seven",
        7,
        [],
        [{"p": float("nan"), "q": "x"}],  # a dict that is not all numbers
    ],
    ids=["dict", "None", "generator", "str", "int", "empty", "mixed-dict"],
)
def test_drawing_never_fails_because_of_what_a_handler_returned(value):
    handler = _Returns(value)
    with handlerkit.trace(handler) as t:
        handler.handle([{"data": b"x"}], None)
    fig = t.show()
    drawn = " ".join(_texts(fig).split())
    if not isinstance(value, list):
        assert "not a list with one answer per request" in drawn, drawn
        assert type(value).__name__ in drawn or repr(value) in drawn, drawn
    plt.close(fig)


def test_cli_trace_titles_the_request_it_draws(tmp_path, capsys):
    """`run a.png b.png --trace`: each request is its own call; the figure shows b.png, says so."""
    from handlerkit import samples

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(samples.digit_png(0))
    b.write_bytes(samples.digit_png(5))
    out = tmp_path / "t.png"
    assert main(["run", str(samples.MNIST_DIR), str(a), str(b), "--trace", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "figure saved to" in printed and "b.png (the last of 2 requests" in printed
    batch = ["run", str(samples.MNIST_DIR), str(a), str(b), "--batch", "--trace", str(out)]
    assert main(batch) == 0
    assert "request 0 of the batch (a.png)" in capsys.readouterr().out


def test_trace_show_takes_a_title():
    from handlerkit import Context, MNISTDigitClassifier, samples

    handler, context = MNISTDigitClassifier(), Context.local(samples.MNIST_DIR)
    handler.initialize(context)
    with handlerkit.trace(handler) as t:
        handler.handle([{"data": samples.digit_png(10)}], context)
    fig = t.show(title="b.png")
    assert fig._suptitle.get_text().startswith("b.png: preprocess")
    plt.close(fig)


def test_cli_trace_draws_a_handler_that_returns_a_dict(tmp_path, capsys):
    handler = tmp_path / "dict_handler.py"
    handler.write_text(
        "from handlerkit import MNISTDigitClassifier\n\n\n"
        "class Handler(MNISTDigitClassifier):\n"
        "    def postprocess(self, data):\n"
        "        return {'digit': int(data.argmax())}\n"
    )
    from handlerkit import samples

    png = tmp_path / "d.png"
    png.write_bytes(samples.digit_png(0))
    out = tmp_path / "t.png"
    argv = ["run", str(samples.MNIST_DIR), str(png), "--handler", str(handler), "--trace", str(out)]
    main(argv)
    assert out.stat().st_size > 5_000


def test_trace_show_finds_a_request_behind_a_rejected_one(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[3:4], context)  # an earlier call: its rows are not drawn
        answers = handler.handle([{"data": b"junk"}, photo_rows[0], photo_rows[1]], context)
    assert set(t.rejected()) == {0} and "not an image" in str(t.rejected()[0])
    assert [t.batch_position(row) for row in range(3)] == [None, 0, 1]
    assert "rejected" in t.table() and "not an image" in t.table().lower()

    fig = t.show(row=2)  # the batch's second row, the request's third
    bars = next(ax for ax in fig.axes if ax.get_title() == "postprocess: answer")
    assert [label.get_text() for label in bars.get_yticklabels()] == list(answers[2])[::-1]
    steps = [ax for ax in fig.axes if ax.get_title().startswith(("Resize", "decode"))]
    assert len(steps) == 2  # the last call's decode and Resize of request 2, not the first call's
    plt.close(fig)

    fig = t.show(row=0)
    texts = [text.get_text() for ax in fig.axes for text in ax.texts]
    assert any(text.startswith("rejected:") for text in texts)
    assert not any(ax.get_title() == "postprocess: answer" for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="request 0 was rejected"):
        viz.show_steps(t, row=0)


def test_rescaled_pictures_say_so_on_the_figure(traced):
    t, _ = traced
    fig = viz.show_steps(t, row=0)
    titles = _titles(fig)
    normalize = next(title for title in titles if title.startswith("Normalize"))
    to_tensor = next(title for title in titles if title.startswith("ToTensor"))
    assert "rescaled: -" in normalize and "-> black..white" in normalize
    assert "rescaled: 0.00.." in to_tensor
    resize = next(title for title in titles if title.startswith("Resize"))
    assert "rescaled" not in resize  # a PIL image is drawn as it is
    plt.close(fig)


def test_show_channels_draws_every_channel_on_one_scale(traced):
    t, _ = traced
    tensor = t.find("Normalize", row=0).output
    fig = viz.show_channels(tensor, "Normalize: channels")
    limits = {ax.images[0].get_clim() for ax in fig.axes}
    assert len(limits) == 1
    low, high = limits.pop()
    assert low == pytest.approx(float(tensor.min())) and high == pytest.approx(float(tensor.max()))
    assert "one shared scale" in fig._suptitle.get_text()
    plt.close(fig)


def test_timelines_are_log_scaled_so_every_bar_shows(traced):
    t, _ = traced
    for fig in (viz.show_timeline(t), t.show(row=0)):
        timed = [ax for ax in fig.axes if ax.get_xlabel() == "ms, log scale"]
        assert timed and all(ax.get_xscale() == "log" for ax in timed)
        for ax in timed:
            shortest = min(bar.get_width() for bar in ax.patches)
            assert ax.get_xlim()[0] < shortest
        plt.close(fig)


def test_long_step_strips_wrap_into_rows(densenet, photo_rows):
    from handlerkit import Context, UploadedDigitClassifier, samples

    handler = UploadedDigitClassifier()
    context = Context.local(samples.MNIST_DIR)
    handler.initialize(context)
    with handlerkit.trace(handler) as t:
        handler.handle([{"data": samples.digit_png(3)}], context)
    fig = viz.show_steps(t)
    panels = [ax for ax in fig.axes if ax.get_title()]
    grid = panels[0].get_subplotspec().get_gridspec()
    assert len(panels) > viz.STEP_COLUMNS and grid.ncols <= viz.STEP_COLUMNS and grid.nrows >= 2
    plt.close(fig)


def test_feature_maps_title_says_how_many_channels_it_draws():
    import torch

    fig = viz.show_feature_maps(torch.rand(32, 26, 26), title="conv1", count=16)
    title = fig._suptitle.get_text()
    assert "the first 16 of 32 channels" in title and "(32 channels" not in title
    assert sum(1 for ax in fig.axes if ax.images) == 16
    plt.close(fig)
    fig = viz.show_feature_maps(torch.rand(8, 5, 5), title="small", count=16)
    assert "(8 channels, each 5x5)" in fig._suptitle.get_text()
    plt.close(fig)


def test_show_explanation_draws_two_maps_on_one_scale_when_asked():
    import torch

    weak, strong = torch.rand(3, 8, 8), 2 * torch.rand(3, 8, 8)
    shared = max(viz.explanation_scale(weak), viz.explanation_scale(strong))
    fig = viz.show_explanation(torch.rand(3, 8, 8), weak, title="weak", scale=shared)
    assert f"0 .. {shared:.3g}, a scale shared with others" in fig._suptitle.get_text()
    assert fig.axes[1].images[-1].get_array().max() < 0.75  # the weak map is drawn weaker
    plt.close(fig)
    own = viz.show_explanation(torch.rand(3, 8, 8), weak, title="weak")
    assert "this map's 99th percentile" in own._suptitle.get_text()
    plt.close(own)
