"""DigitPlayground: upload or draw a digit in Jupyter, see the prediction and every traced stage.

The widget sends what you upload (or draw) through a handler's `handle` as one TorchServe request
row, traced, and draws the result: the picture, each preprocessing step, the probabilities.
`snapshot()` draws the same as one matplotlib figure, which a saved notebook keeps.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from ..context import Context
from ..tracing import trace
from . import viz

PAD_SIZE = 280  # drawing pad in pixels: ten times MNIST's 28, so strokes scale like a pen's
STROKE = 22


class DigitPlayground(widgets.VBox):
    """Upload a digit image or draw one; the handler's answer and its trace appear below.

    An upload wipes the drawing pad: the answer shown is the upload's, and a drawing left on the
    pad would look like what was classified. Draw again (or "Classify drawing") to classify the pad.

    Attributes:
        upload: the FileUpload widget (ipywidgets 8: its value is a tuple of dicts).
        pad: the drawing canvas (ipycanvas).
        prediction: the last prediction (the digit, or the best label of a top-k answer), or
            None when the last request failed.
        answer: the handler's last answer (a dict, or e.g. an int from TorchServe's MNIST
            example handler), and `trace`: its Trace.

    Args:
        handler: any handler (default: `UploadedDigitClassifier` on the MNIST folder). An
            initialized one keeps its own model folder and context.
        model_dir: the model folder to initialize `handler` on (default: the handler's own folder
            when it has one, else the MNIST folder).
        context: the context to call the handler with (default: one built for the folder).
    """

    def __init__(
        self, handler=None, model_dir=None, gpu_id: int | None = None, context=None
    ) -> None:
        from ipycanvas import Canvas

        from ..handlers.uploads import UploadedDigitClassifier

        self.handler = handler or UploadedDigitClassifier()
        self.context = context or Context.local(
            model_dir or _model_dir(self.handler), gpu_id=gpu_id
        )
        if not getattr(self.handler, "initialized", False):
            self.handler.initialize(self.context)
        self.prediction: int | str | None = None
        self.answer: dict | None = None
        self.trace = None

        self.upload = widgets.FileUpload(
            accept="image/*",
            multiple=False,
            description="Upload a digit",
            layout=widgets.Layout(width="auto"),
        )
        self.pad = Canvas(
            width=PAD_SIZE,
            height=PAD_SIZE,
            sync_image_data=True,
            layout=widgets.Layout(
                width=f"{PAD_SIZE}px", height=f"{PAD_SIZE}px", border="1px solid #888"
            ),
        )
        self.classify_button = widgets.Button(description="Classify drawing", icon="check")
        self.clear_button = widgets.Button(description="Clear", icon="eraser")
        self.explain_button = widgets.Button(description="Explain", icon="search")
        self.explanation = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.explanation_box = widgets.VBox()  # shows `explanation` once there is one
        self.attributions = None  # the last explanation's answer (one map per input channel)
        self._last_data: bytes | None = None
        self._last_source = ""  # "upload" or "drawing": where `_last_data` came from
        self.status = widgets.HTML("Upload an image of a digit, or draw one and release the mouse.")
        self.status.add_class("handlerkit-status")
        self.bars = widgets.Image(format="png", layout=widgets.Layout(width="336px"))
        self.figure = widgets.VBox()  # a PNG picture of the traced steps

        self._drawing = False
        self._last = None
        self._classify_when_synced = False
        self._wire()
        self._clear_pad()
        buttons = widgets.HBox([self.classify_button, self.clear_button, self.explain_button])
        pad_box = widgets.VBox([self.pad, buttons])
        super().__init__(
            [
                widgets.HBox([self.upload, self.status]),
                widgets.HBox([pad_box, self.bars]),
                self.figure,
                self.explanation_box,
            ]
        )

    # ---- what a learner does ------------------------------------------------------------------
    def classify(self, data: bytes, source: str = "upload") -> dict:
        """Send image bytes through the handler as one request, traced, and show the result."""
        context = self.context
        if hasattr(context, "for_requests"):  # handlerkit's Context: fresh statuses per request
            context = context.for_requests([{}])
        with trace(self.handler) as t:
            answer = self.handler.handle([{"data": data}], context)[0]
        self.trace, self.answer, self._last_data, self._last_source = t, answer, data, source
        self.explanation.value, self.attributions = b"", None
        self.explanation_box.children = ()
        if isinstance(answer, dict) and "error" in answer:
            self.prediction = None
            message = html.escape(answer["error"])
            self.status.value = (
                f"<b style='color:#b00'>Could not classify this {source}:</b> {message}"
            )
            self.figure.children = ()
            self.bars.value = b""
        else:
            self.prediction, confidence = _prediction(answer)
            sure = f"{confidence:.0%} sure, " if confidence is not None else ""
            self.status.value = (
                f"<b class='handlerkit-prediction'>Prediction: "
                f"{html.escape(str(self.prediction))}</b> ({sure}from your {source})"
            )
            self._draw(t, answer)
        return answer

    def explain(self, target: int | None = None):
        """What the model looked at for the last image: Integrated Gradients, as TorchServe's
        `/explanations/` computes them, for `target` (default: the digit it predicted)."""
        if self._last_data is None or (target is None and not isinstance(self.prediction, int)):
            self.status.value = "Classify a digit first, then ask what the model looked at."
            return None
        target = self.prediction if target is None else target
        context = self.context
        if hasattr(context, "for_requests"):
            context = context.for_requests([{"explain": "True"}])
        with trace(self.handler) as t:
            answer = self.handler.handle([{"data": self._last_data, "target": target}], context)[0]
        if isinstance(answer, dict):  # the request was refused: {"error": ...}
            self.status.value = html.escape(str(answer.get("error", answer)))
            return None
        self.attributions = answer
        steps = [r for r in t.of_kind("step") if r.row == 0]  # the image the model was given
        picture = steps[-1].output
        figure = viz.show_explanation(picture, answer, title=f"what the model looked at: {target}")
        self.explanation.value = _figure_png(figure)
        self.explanation_box.children = (self.explanation,)
        return answer

    def classify_drawing(self) -> dict | None:
        """Classify what is on the drawing pad now (the pixels that have reached the kernel)."""
        if self.pad.image_data is None:
            self.status.value = "The drawing pad has not reached the kernel yet; draw again."
            return None
        return self.classify(_png(self.pad.get_image_data()), source="drawing")

    def snapshot(self) -> Figure:
        """The widget as it stands, as one matplotlib figure: what a saved notebook can keep.

        A widget needs a running kernel; a notebook opened from disk (or checked by nbval) keeps
        only its text form. Display this figure after using the widget and the saved notebook
        shows it: the status line as the title, the image last classified (the upload or the
        drawing, as sent), the probability bars, then the traced steps and the explanation (when
        there is one), as the widget draws them.
        """
        title = _plain_text(self.status.value)
        top = {}  # caption -> picture, side by side
        sent = _decoded(self._last_data) if self._last_data is not None else None
        if sent is not None:  # None also when it was not an image: the status line says so
            top[f"your {self._last_source}, as sent"] = sent
        if self.bars.value:
            top[""] = _png_image(self.bars.value)  # titled by the widget already
        below = [_png_image(image.value) for image in self.figure.children]
        if self.explanation_box.children:
            below.append(_png_image(self.explanation.value))
        if not top and not below:
            fig, ax = plt.subplots(figsize=(6, 1))
            ax.text(0.5, 0.5, title, ha="center", va="center", fontsize=10, wrap=True)
            ax.axis("off")
            return fig
        # Sizes in inches at the widget's 80 dpi, so every picture keeps its drawn size.
        heights = [2.8] * bool(top) + [image.height / 80 for image in below]
        width = max([8.0] + [image.width / 80 for image in below])
        fig = plt.figure(figsize=(width, sum(heights) + 0.6), layout="constrained")
        grid = fig.add_gridspec(len(heights), max(len(top), 1), height_ratios=heights)
        for i, (caption, image) in enumerate(top.items()):
            ax = fig.add_subplot(grid[0, i])
            ax.imshow(_on_white(image))
            ax.set_title(caption, fontsize=9)
        for row, image in enumerate(below, start=bool(top)):
            fig.add_subplot(grid[row, :]).imshow(_on_white(image))
        for ax in fig.axes:
            ax.axis("off")
        fig.suptitle(f"DigitPlayground: {title}", fontsize=11)
        return fig

    # ---- wiring ---------------------------------------------------------------------------------
    def _wire(self) -> None:
        self.upload.observe(self._on_upload, names="value")
        self.explain_button.on_click(lambda _: self._safely(self.explain))
        self.pad.on_mouse_down(self._on_down)
        self.pad.on_mouse_move(self._on_move)
        self.pad.on_mouse_up(self._on_up)
        self.pad.observe(self._on_pad_synced, names="image_data")
        self.classify_button.on_click(lambda _: self._safely(self.classify_drawing))
        self.clear_button.on_click(lambda _: self._clear_pad("Pad cleared: draw a digit."))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if files:
            item = files[-1] if isinstance(files, (tuple, list)) else list(files.values())[-1]
            self._clear_pad()  # the old drawing is not what this answer is about
            self._safely(self.classify, bytes(item["content"]), "upload")

    def _on_down(self, x: float, y: float) -> None:
        self._drawing, self._last = True, (x, y)
        self.pad.fill_circle(x, y, STROKE / 2)

    def _on_move(self, x: float, y: float) -> None:
        if self._drawing:
            self.pad.stroke_line(*self._last, x, y)
            self.pad.fill_circle(x, y, STROKE / 2)
            self._last = (x, y)

    def _on_up(self, x: float, y: float) -> None:
        if self._drawing:
            self._drawing = False
            # The last strokes' pixels may still be on their way: classify what has arrived
            # (right if the pen paused before release) and again when newer pixels arrive.
            self._classify_when_synced = True
            if self.pad.image_data is not None:
                self._safely(self.classify_drawing)

    def _on_pad_synced(self, _change) -> None:
        if self._classify_when_synced:
            self._classify_when_synced = False
            self._safely(self.classify_drawing)

    def _clear_pad(self, message: str | None = None) -> None:
        self._classify_when_synced = False
        if message:
            self.status.value = message
        self.pad.fill_style = "white"
        self.pad.fill_rect(0, 0, PAD_SIZE, PAD_SIZE)
        self.pad.fill_style = self.pad.stroke_style = "black"
        self.pad.line_width, self.pad.line_cap = STROKE, "round"

    def _safely(self, fn, *args) -> None:
        """Run a callback; show any failure as a message in the widget, never a traceback."""
        try:
            fn(*args)
        except Exception as error:  # noqa: BLE001 - the widget must stay usable
            self.prediction = None
            self.status.value = (
                f"<b style='color:#b00'>Something went wrong:</b> {html.escape(repr(error))}"
            )

    def _draw(self, t, answer) -> None:
        steps = viz.show_steps(t, row=0, title="preprocess: what the handler did to your digit")
        title = f"postprocess: prediction {self.prediction}"
        if isinstance(answer, dict) and "probabilities" in answer:
            bars = viz.show_digit_probabilities(answer["probabilities"], title=title)
        elif isinstance(answer, dict) and answer:  # {label: probability}, e.g. ImageClassifier
            bars = viz.show_topk(answer, title=title)
        else:  # a bare answer (TorchServe's MNIST example returns the digit): nothing to draw
            bars = None
        self.bars.value = _figure_png(bars) if bars is not None else b""
        self.figure.children = (
            widgets.Image(
                value=_figure_png(steps), format="png", layout=widgets.Layout(max_width="100%")
            ),
        )


def _model_dir(handler):
    """The model folder an initialized handler was loaded from; else the MNIST folder."""
    from ..course.samples import MNIST_DIR

    if not getattr(handler, "initialized", False):
        return MNIST_DIR
    properties = getattr(getattr(handler, "context", None), "system_properties", None) or {}
    if properties.get("model_dir"):
        return properties["model_dir"]
    weights = getattr(handler, "model_pt_path", None)
    if weights:
        return Path(weights).parent
    raise ValueError(
        f"cannot tell which model folder {type(handler).__name__} was loaded from; "
        "pass DigitPlayground(handler, context=...) or model_dir=..."
    )


def _prediction(answer) -> tuple[int | str, float | None]:
    """(what was predicted, how sure) for the answer formats handlers return."""
    if isinstance(answer, dict) and "digit" in answer:  # UploadedDigitClassifier
        return answer["digit"], max(answer.get("probabilities") or [None])
    if isinstance(answer, dict) and answer:  # {label: probability}, best first
        label = next(iter(answer))
        return label, answer[label] if isinstance(answer[label], float) else None
    return answer, None  # e.g. a bare int from TorchServe's MNIST example handler


def _figure_png(fig) -> bytes:
    """Render a figure to PNG bytes and close it (so it is not also shown by the notebook)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def _decoded(data: bytes) -> Image.Image | None:
    """The image in `data`, decoded; None when it is not one (or is truncated)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return image


def _on_white(image: Image.Image) -> np.ndarray:
    """RGB pixels of `image`, transparent parts on white (as a browser shows them)."""
    paper = Image.new("RGBA", image.size, "white")
    return np.asarray(Image.alpha_composite(paper, image.convert("RGBA")).convert("RGB"))


def _png_image(data: bytes) -> Image.Image:
    """PNG bytes (a widget's picture) -> a PIL image."""
    return Image.open(io.BytesIO(bytes(data)))


def _plain_text(markup: str) -> str:
    """The status line's HTML as plain text."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _png(pixels: np.ndarray) -> bytes:
    """RGBA pixels from the canvas -> PNG bytes, the way a browser upload would arrive."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
