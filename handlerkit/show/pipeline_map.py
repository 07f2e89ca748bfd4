"""One map of the pipeline: a request's path through `handle`, the handler classes, the hooks.

Sits beside viz (it draws, with matplotlib only); the class boxes list the pipeline methods each
class defines itself, read from the classes, so the map changes when the code does.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ..handlers.base import BaseHandler
from ..handlers.image_classifier import ImageClassifier
from ..handlers.mnist import MNISTDigitClassifier
from ..handlers.uploads import UploadedDigitClassifier
from ..handlers.vision import VisionHandler
from .viz import STAGE_COLORS

HIERARCHY = (
    BaseHandler,
    VisionHandler,
    ImageClassifier,
    MNISTDigitClassifier,
    UploadedDigitClassifier,
)
PIPELINE_METHODS = (
    "initialize",
    "handle",
    "stages",
    "preprocess",
    "preprocess_one",
    "decode",
    "convert",
    "transform",
    "guarded_inference",
    "inference",
    "postprocess",
    "explain_handle",
    "get_insights",
    "describe_handle",
)
HOOK_COLORS = {"stage hook": "tab:red", "step hook": "tab:purple", "layer hook": "tab:brown"}


def defined_methods(cls: type) -> list[str]:
    """The pipeline methods `cls` defines itself (not inherited), in pipeline order."""
    return [name for name in PIPELINE_METHODS if name in vars(cls)]


def draw_pipeline_map() -> Figure:
    """The whole pipeline on one figure: request -> handle -> stages -> answers, and who does what.

    Top: one `handle` call, stage by stage, with preprocess opened into its per-row steps and
    batch steps; each box is marked with the hook that records it when traced. Bottom: the class
    hierarchy, each class with the pipeline methods it defines (read from the code).
    """
    fig = plt.figure(figsize=(15, 9.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    _request_path(ax)
    _preprocess_steps(ax)
    _hierarchy(ax)
    _legend(ax)
    fig.suptitle(
        "handlerkit's pipeline: one TorchServe request through handle(), "
        "the handler classes, and where each trace hook fires",
        fontsize=13,
    )
    return fig


def save_pipeline_map(path: str | Path) -> Path:
    """Draw the map and save it as a PNG at `path` (e.g. docs/pipeline_map.png)."""
    path = Path(path)
    fig = draw_pipeline_map()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _box(ax, x, y, w, h, text, color="white", edge="black", fontsize=9, hook=None, weight=None):
    """A rounded box with centred text; `hook` adds a coloured tag above its right corner."""
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.3", facecolor=color, edgecolor=edge, linewidth=1.2
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, weight=weight)
    if hook:
        ax.text(
            x + w,
            y + h + 0.9,
            hook,
            ha="right",
            va="bottom",
            fontsize=7,
            color="white",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": HOOK_COLORS[hook], "edgecolor": "none"},
        )


def _arrow(ax, start, end, text=None, color="black", style="-|>"):
    ax.annotate(
        "", xy=end, xytext=start, arrowprops={"arrowstyle": style, "color": color, "lw": 1.3}
    )
    if text:
        ax.text(
            (start[0] + end[0]) / 2,
            (start[1] + end[1]) / 2 + 1.2,
            text,
            ha="center",
            fontsize=7.5,
            color=color,
        )


def _request_path(ax) -> None:
    """request rows -> handle -> preprocess -> inference -> postprocess -> answers (+ explain)."""
    y, h = 84, 7
    light = {name: _tint(color) for name, color in STAGE_COLORS.items()}
    _box(ax, 0.5, y, 11, h, "request rows\n[{'data': bytes}, ...]\n+ context", "whitesmoke")
    _box(ax, 15, y, 12, h, "handle(data, context)\nrow_errors = {}", "whitesmoke", weight="bold")
    _box(ax, 31, y, 13, h, "preprocess\nrows -> one batch tensor", light["preprocess"],
         hook="stage hook")  # fmt: skip
    _box(ax, 48, y, 15, h, "inference\n(guarded_inference: model(batch),\nrow by row if it fails)",
         light["inference"], fontsize=8, hook="stage hook")  # fmt: skip
    _box(ax, 67, y, 14, h, "postprocess\nlogits -> top-k {label: p}", light["postprocess"],
         hook="stage hook")  # fmt: skip
    _box(ax, 85, y, 14, h, "answers, one per row\n(a bad row: its own\nerror in its slot)",
         "whitesmoke", fontsize=8)  # fmt: skip
    for start, end in ((12.2, 14.6), (27.7, 30.6), (44.7, 47.6), (63.7, 66.6), (81.7, 84.6)):
        _arrow(ax, (start, y + h / 2), (end, y + h / 2))
    # explain: header explain: True replaces inference + postprocess
    _box(ax, 66, 73.5, 20, 5, "explain_handle (header explain: True)\nIntegrated Gradients",
         light["explain"], fontsize=8, hook="stage hook")  # fmt: skip
    _arrow(ax, (42, y - 0.4), (65.6, 76), color="tab:purple")
    _arrow(ax, (86.4, 76), (90, y - 0.4), color="tab:purple")
    ax.text(21, 79, "describe: True -> describe_handle()", fontsize=7.5, ha="center", color="gray")
    # the layer hooks sit inside the model
    _box(ax, 49.5, 66, 12, 4, "model layers, e.g.\nfeatures.denseblock1", "white", fontsize=7.5,
         hook="layer hook")  # fmt: skip
    _arrow(ax, (55.5, y - 0.4), (55.5, 70.6), color="tab:brown", style="-")


def _preprocess_steps(ax) -> None:
    """preprocess opened: per row decode -> convert -> transforms, then stack -> to_device."""
    ax.add_patch(
        FancyBboxPatch(
            (0.5, 45.5), 72, 17, boxstyle="round,pad=0.4", facecolor="none",
            edgecolor=STAGE_COLORS["preprocess"], linestyle="--", linewidth=1.2,
        )
    )  # fmt: skip
    ax.text(1, 60.5, "preprocess, opened (VisionHandler)", fontsize=9, weight="bold",
            color=STAGE_COLORS["preprocess"])  # fmt: skip
    _arrow(ax, (37.5, 83.5), (37.5, 63.5), color=STAGE_COLORS["preprocess"])
    ax.text(1, 56.3, "for each row\n(preprocess_one):", fontsize=8, va="center")
    y, h = 48.5, 5.5
    steps = (
        (11, 9, "decode\nbytes -> PIL"),
        (23, 9, "convert\nmode, e.g. RGB"),
        (35, 15, "image_processing:\none step per transform\n(Resize, CenterCrop, ...)"),
    )
    for x, w, text in steps:
        _box(ax, x, y, w, h, text, "white", fontsize=8, hook="step hook")
    _arrow(ax, (20.4, y + h / 2), (22.6, y + h / 2))
    _arrow(ax, (32.4, y + h / 2), (34.6, y + h / 2))
    ax.text(30, 46.3, "a row that fails here is rejected (row_errors), the others go on",
            fontsize=7.5, ha="center", color="tab:red")  # fmt: skip
    _box(ax, 54, y, 7.5, h, "stack\nrows -> batch", "white", fontsize=8, hook="step hook")
    _box(ax, 64, y, 8, h, "to_device\nbatch -> device", "white", fontsize=8, hook="step hook")
    _arrow(ax, (50.4, y + h / 2), (53.6, y + h / 2))
    _arrow(ax, (61.9, y + h / 2), (63.6, y + h / 2))
    _arrow(ax, (72.4, y + h / 2), (58, 83.5), color=STAGE_COLORS["inference"])
    ax.text(67, 64.5, "the batch goes\non to inference", fontsize=7.5, color="tab:orange")


def _hierarchy(ax) -> None:
    """BaseHandler -> VisionHandler -> ImageClassifier -> MNIST -> Uploaded, with their methods."""
    ax.text(0.5, 38, "the handler classes (each defines the methods listed; the rest it inherits)",
            fontsize=9, weight="bold")  # fmt: skip
    width, gap, y, h = 17.5, 2.6, 6, 27
    for i, cls in enumerate(HIERARCHY):
        x = 0.5 + i * (width + gap)
        methods = "\n".join(f"{name}()" for name in defined_methods(cls))
        text = f"{cls.__name__}\n\n{methods}"
        ax.add_patch(
            FancyBboxPatch((x, y), width, h, boxstyle="round,pad=0.3", facecolor="ivory",
                           edgecolor="dimgray")
        )  # fmt: skip
        ax.text(
            x + width / 2, y + h - 1, text, ha="center", va="top", fontsize=8.5, linespacing=1.3
        )
        if i:
            _arrow(ax, (x - gap + 0.2, y + h / 2), (x - 0.2, y + h / 2))
    ax.text(0.5, 1.5, "arrow: 'is extended by' (subclass). TorchServe's own chain is the same: "
            "BaseHandler -> VisionHandler -> ImageClassifier -> its MNIST example handler.",
            fontsize=8, color="dimgray")  # fmt: skip


def _legend(ax) -> None:
    x, y = 80, 60
    ax.text(x, y, "trace hooks (handlerkit.trace):", fontsize=8.5, weight="bold")
    notes = {
        "stage hook": "each stage: input, output, ms",
        "step hook": "each per-row or batch step",
        "layer hook": "torch forward hooks on named layers",
    }
    for i, (hook, note) in enumerate(notes.items()):
        ax.text(x, y - 3.2 * (i + 1), hook, fontsize=7.5, color="white",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": HOOK_COLORS[hook],
                      "edgecolor": "none"})  # fmt: skip
        ax.text(x + 7.5, y - 3.2 * (i + 1), note, fontsize=7.5)
    ax.text(x, y - 13.5, "no hooks registered: the stages\nrun directly, at no cost",
            fontsize=7.5, color="dimgray")  # fmt: skip


def _tint(color: str) -> tuple:
    """A light version of a named colour, for box backgrounds."""
    from matplotlib.colors import to_rgb

    return tuple(0.75 + 0.25 * c for c in to_rgb(color))


if __name__ == "__main__":  # python -m handlerkit.show.pipeline_map docs/pipeline_map.png
    import sys

    print(save_pipeline_map(sys.argv[1] if len(sys.argv) > 1 else "docs/pipeline_map.png"))
