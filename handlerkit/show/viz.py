"""Drawings of trace records: the image after each step, channels, histograms, top-k, timeline.

Every function takes records or tensors from a `Trace` and returns a matplotlib Figure, titled
with the stage it shows, so a notebook cell shows one picture of one part of the pipeline.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ..tracing import StageRecord, Trace

STAGE_COLORS = {
    "preprocess": "tab:blue",
    "inference": "tab:orange",
    "postprocess": "tab:green",
    "explain": "tab:purple",
}


STEP_COLUMNS = 6  # step strips wrap into rows of at most this many panels


def as_picture(value) -> np.ndarray:
    """A PIL image or a (C,H,W)/(H,W) tensor as an array imshow can draw (scaled to 0..1).

    A tensor is rescaled to its own range (its minimum drawn black, its maximum white), so two
    tensors that differ only by an affine map (ToTensor's output and Normalize's) look the same:
    title such a picture with `rescale_note(value)` to say so.
    """
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB") if value.mode not in ("RGB", "L") else value)
    array = _drawn_values(value)
    low, high = array.min(), array.max()
    return ((array - low) / (high - low + 1e-12)).numpy()


def rescale_note(value) -> str:
    """What `as_picture` did to `value`: '' for a PIL image, else 'rescaled: low..high -> ...'."""
    if isinstance(value, Image.Image):
        return ""
    array = _drawn_values(value)
    return f"rescaled: {float(array.min()):.2f}..{float(array.max()):.2f} -> black..white"


def _drawn_values(value) -> torch.Tensor:
    """The part of a tensor `as_picture` draws: the first image, channels last, as float."""
    array = value.detach().float().cpu()
    if array.ndim == 4:
        array = array[0]
    if array.ndim == 3:
        array = array.permute(1, 2, 0) if array.shape[0] in (1, 3) else array[0:1].permute(1, 2, 0)
        if array.shape[-1] == 1:
            array = array[..., 0]
    return array


def show_steps(trace: Trace, row: int = 0, title: str | None = None) -> Figure:
    """Request `row` after each per-image step: decoded, resized, cropped, tensor, normalized."""
    records = _steps(trace.last_call(), row)
    if not records:
        raise ValueError(_no_steps(trace, row))
    rows = -(-len(records) // STEP_COLUMNS)
    cols = -(-len(records) // rows)  # rows of equal length: 9 steps -> 2 rows of 5
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.8 * cols, 3.1 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.flat):
        if i < len(records):
            _draw_step(ax, records[i], fontsize=9)
        else:
            fig.delaxes(ax)
    fig.suptitle(title or f"preprocess, request {row}: one picture per step")
    return fig


def show_channels(
    tensor: torch.Tensor, title: str = "channels", names: Sequence[str] = ("R", "G", "B")
) -> Figure:
    """Each channel of a (C,H,W) tensor as a grayscale image, all on one shared scale.

    The tensor's overall minimum is black and its maximum white in every panel, so a channel
    that is brighter in the picture has larger values; each title gives the channel's own range.
    """
    tensor = _first_image(tensor)
    low, high = float(tensor.min()), float(tensor.max())
    fig, axes = plt.subplots(
        1,
        tensor.shape[0],
        figsize=(3 * tensor.shape[0], 3.4),
        squeeze=False,
        layout="constrained",
    )
    for i, (ax, channel) in enumerate(zip(axes[0], tensor)):
        ax.imshow(channel.numpy(), cmap="gray", vmin=low, vmax=high)
        name = names[i] if i < len(names) and tensor.shape[0] == len(names) else f"channel {i}"
        ax.set_title(f"{name}: {channel.min():.2f} .. {channel.max():.2f}", fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"{title}\none shared scale for all channels: {low:.2f} .. {high:.2f} -> black..white",
        fontsize=10,
    )
    return fig


def show_histogram(tensor: torch.Tensor, title: str = "values", bins: int = 60) -> Figure:
    """Histogram of a tensor's values, one colour per channel when it has 3."""
    tensor = _first_image(tensor)
    fig, ax = plt.subplots(figsize=(6, 3))
    if tensor.ndim == 3 and tensor.shape[0] == 3:
        for channel, color in zip(tensor, ("red", "green", "blue")):
            ax.hist(channel.flatten().numpy(), bins=bins, color=color, alpha=0.45, label=color)
        ax.legend(fontsize=8)
    else:
        ax.hist(tensor.flatten().numpy(), bins=bins, color="tab:gray")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_title(f"{title}: mean {tensor.mean():.3f}, std {tensor.std():.3f}")
    ax.set_xlabel("value")
    fig.tight_layout()
    return fig


def show_topk(answer: dict | Sequence[float], title: str = "postprocess: top-k") -> Figure:
    """An answer `{label: probability}` (or a list of probabilities) as horizontal bars."""
    if not isinstance(answer, dict):
        answer = {str(i): float(p) for i, p in enumerate(answer)}
    labels, probs = list(answer)[::-1], list(answer.values())[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(labels) + 1))
    bars = ax.barh(labels, probs, color="tab:green")
    ax.bar_label(bars, labels=[f"{p:.3f}" for p in probs], fontsize=8, padding=2)
    ax.set_xlim(0, max(1.0, max(probs) * 1.15))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def show_digit_probabilities(
    probabilities: Sequence[float], title: str = "postprocess: probabilities"
) -> Figure:
    """Ten digit probabilities as vertical bars, the most likely one highlighted."""
    best = int(np.argmax(probabilities))
    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    colors = ["tab:green" if d == best else "tab:gray" for d in range(len(probabilities))]
    ax.bar([str(d) for d in range(len(probabilities))], probabilities, color=colors)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("digit")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def show_logits(
    logits: torch.Tensor, title: str = "inference: logits and softmax", k: int = 5
) -> Figure:
    """The raw model output of one request beside its softmax, top k marked."""
    logits = logits.detach().float().cpu()
    logits = logits[0] if logits.ndim == 2 else logits
    probs = torch.softmax(logits, 0)
    top = torch.topk(probs, min(k, len(probs))).indices
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.0), layout="constrained")
    for ax, values, name in ((left, logits, "logits"), (right, probs, "softmax")):
        ax.plot(values.numpy(), linewidth=0.7, color="tab:orange")
        ax.scatter(top.numpy(), values[top].numpy(), color="black", s=12, zorder=3)
        ax.set_title(f"{name} over {len(values)} classes")
        ax.set_xlabel("class index")
    fig.suptitle(title)
    return fig


def show_feature_maps(tensor: torch.Tensor, title: str = "feature maps", count: int = 16) -> Figure:
    """The first `count` channels of a layer's (N,C,H,W) output, as a grid."""
    tensor = _first_image(tensor)
    count = min(count, tensor.shape[0])
    cols = min(8, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.5 * cols, 1.5 * rows + 0.9), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            ax.imshow(tensor[i].numpy(), cmap="viridis")
    drawn = f"{count} channels" if count == tensor.shape[0] else f"the first {count} of "
    drawn += "" if count == tensor.shape[0] else f"{tensor.shape[0]} channels"
    fig.suptitle(
        f"{title} ({drawn}, each {tensor.shape[1]}x{tensor.shape[2]})\n"
        "each map rescaled to its own range: its min -> dark, its max -> yellow",
        fontsize=10,
    )
    return fig


def show_timeline(trace: Trace, title: str = "where the time goes") -> Figure:
    """One bar per stage (and step, indented), as long as it took."""
    records = [r for r in trace if r.kind in ("stage", "step") and (r.row in (None, 0))]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(records) + 1))
    names = [
        ("" if r.kind == "stage" else "   ") + r.stage + ("" if r.row is None else f" [{r.row}]")
        for r in records
    ]
    millis = [r.seconds * 1000 for r in records]
    colors = [
        STAGE_COLORS.get(r.stage, "tab:gray") if r.kind == "stage" else "lightsteelblue"
        for r in records
    ]  # steps run inside preprocess: a light shade of its colour
    ax.barh(names[::-1], millis[::-1], color=colors[::-1])
    _log_milliseconds(ax, millis)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _log_milliseconds(ax, millis: Sequence[float]) -> None:
    """A log x axis in ms whose left edge sits below the shortest bar, so every bar shows."""
    positive = [m for m in millis if m > 0] or [1.0]
    ax.set_xscale("log")
    ax.set_xlim(min(positive) / 3, max(positive) * 2)
    ax.set_xlabel("ms, log scale")


def show_trace(trace: Trace, row: int = 0, title: str | None = None) -> Figure:
    """The whole pipeline for request `row`: its steps, the model's answer, the timeline.

    Drawn from the trace's last `handle` call; a rejected request shows its error in place of the
    model's answer (the batch's inference and postprocess rows are those of the other requests).
    The answer is drawn as it was returned: bars only for numbers the handler answered (a
    ``{label: probability}`` dict, an upload's "probabilities"), text for anything else; what a
    handler returned never stops the drawing. `title` names the request (default: its row).
    """
    records = trace.last_call()
    steps = _steps(records, row)
    position = trace.batch_position(row)
    inference = _last(records, "inference") if position is not None else None
    answer = _answer(trace, records, row, position)
    if isinstance(answer, dict) and _numbers(answer.get("probabilities")):  # an upload's answer
        heading = f"postprocess: probabilities (digit {answer.get('digit')!r})"
        answer = {str(i): float(p) for i, p in enumerate(answer["probabilities"])}
    else:
        heading = "postprocess: answer"
    step_rows = max(1, -(-len(steps) // STEP_COLUMNS))
    columns = max(-(-len(steps) // step_rows), 3)  # rows of equal length, as in show_steps
    fig = plt.figure(figsize=(2.6 * columns, 3.2 * (step_rows + 1) + 0.4), layout="constrained")
    grid = fig.add_gridspec(step_rows + 1, columns)
    for i, record in enumerate(steps):
        _draw_step(fig.add_subplot(grid[i // columns, i % columns]), record, fontsize=8)
    last = step_rows  # the answer row, below the steps
    output = inference.output if inference is not None else None
    if isinstance(output, torch.Tensor) and output.ndim >= 1 and position < len(output):
        ax = fig.add_subplot(grid[last, : columns // 3 or 1])
        ax.plot(output[position].float().flatten().numpy(), linewidth=0.6, color="tab:orange")
        ax.set_title(f"inference: output {_shape(inference)}", fontsize=9)
    if isinstance(answer, dict) and answer and "error" not in answer and _numbers(answer.values()):
        ax = fig.add_subplot(grid[last, columns // 3 : 2 * columns // 3])
        labels, probs = list(answer)[::-1], [float(p) for p in answer.values()][::-1]
        ax.barh([str(label)[:18] for label in labels], probs, color="tab:green")
        ax.set_title(heading, fontsize=9)
        ax.tick_params(labelsize=7)
    elif answer is not None:
        ax = fig.add_subplot(grid[last, columns // 3 : 2 * columns // 3])
        heading = "rejected" if position is None else heading
        error = isinstance(answer, dict) and "error" in answer
        message = answer["error"] if error else answer if isinstance(answer, str) else _said(answer)
        text = textwrap.fill(str(message), 40)[:240]
        ax.text(0.5, 0.5, f"{heading}:\n{text}", ha="center", va="center", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[last, 2 * columns // 3 :])
    stages = [r for r in records if r.kind == "stage"]
    millis = [r.seconds * 1000 for r in stages]
    ax.barh(
        [r.stage for r in stages][::-1],
        millis[::-1],
        color=[STAGE_COLORS.get(r.stage, "tab:gray") for r in stages][::-1],
    )
    _log_milliseconds(ax, millis)
    ax.set_title("time per stage", fontsize=9)
    fig.suptitle(f"{title or f'request {row}'}: preprocess -> inference -> postprocess")
    return fig


def _numbers(values) -> bool:
    """True for a non-empty collection of plain real numbers (what bars can show as returned)."""
    if not isinstance(values, (list, tuple, type({}.values()))) or not values:
        return False
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _said(value) -> str:
    """A returned value as text: JSON-like for plain values, else its type and a short repr."""
    if isinstance(value, (str, int, float, bool, list, dict)) or value is None:
        return f"{value!r:.160}"
    return f"a {type(value).__name__}: {value!r:.160}"


def _first_image(tensor: torch.Tensor) -> torch.Tensor:
    """A float CPU copy of a (C,H,W) tensor, or of the first image of an (N,C,H,W) batch."""
    tensor = tensor.detach().float().cpu()
    return tensor[0] if tensor.ndim == 4 else tensor


def _draw_step(ax, record: StageRecord, fontsize: int) -> None:
    """A step's output as a picture, titled with the step and what it produced."""
    picture = as_picture(record.output)
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    note = rescale_note(record.output)
    title = f"{record.stage}\n{_shape(record)}" + (f"\n{note}" if note else "")
    ax.set_title(title, fontsize=fontsize)
    ax.axis("off")


def _shape(record: StageRecord) -> str:
    return f"{record.dtype} {'x'.join(map(str, record.shape or ()))}"


def _steps(records: list[StageRecord], row: int) -> list[StageRecord]:
    """The copied per-image steps of request `row` among `records` (one `handle` call's)."""
    return [r for r in records if r.row == row and r.output is not None and r.kind == "step"]


def _no_steps(trace: Trace, row: int) -> str:
    error = trace.rejected().get(row)
    if error is not None:
        return f"request {row} was rejected before any step could be copied: {error}"
    return (
        f"no copied steps for request {row}: trace with capture='full' (and max_rows > {row}), "
        "and pass a row the traced batch has"
    )


def _last(records: list[StageRecord], stage: str) -> StageRecord | None:
    found = [r for r in records if r.stage == stage]
    return found[-1] if found else None


def _answer(trace: Trace, records: list[StageRecord], row: int, position: int | None):
    """Request `row`'s answer: its error if it was rejected, else its row of postprocess.

    When postprocess returned something other than a list (a dict, None, a tensor, ...), that is
    no row per request: the whole of it is described instead, as text.
    """
    if position is None:
        return {"error": str(trace.rejected()[row])}
    record = _last(records, "postprocess")
    if record is None:
        return None
    output = record.output
    if isinstance(output, list):
        return output[position] if position < len(output) else None
    if output is None and trace.capture != "full":
        return None  # a summary trace keeps no values
    return f"postprocess returned {_said(output)}, not a list with one answer per request"


def explanation_scale(attributions) -> float:
    """The 99th percentile of |attribution| (summed over channels): `show_explanation`'s scale."""
    values = torch.as_tensor(attributions, dtype=torch.float32)
    summed = values.sum(0) if values.ndim == 3 else values
    return float(torch.quantile(summed.abs().flatten(), 0.99)) or 1.0


def show_explanation(
    image, attributions, title: str = "explain", scale: float | None = None
) -> Figure:
    """A photo beside the evidence Integrated Gradients found for and against one class.

    `attributions` is one request's answer from `/explanations/` (C x H x W, the model's input
    size); they are summed over the channels. Green: pixels that raise the class's score; red:
    pixels that lower it. Both maps share one scale, by default the 99th percentile of
    |attribution| (a few pixels would otherwise set the scale and leave the rest invisible;
    brighter ones are clipped), so their strengths compare; `image` is drawn at the model's input
    size. To compare two explanations, pass them one `scale` (e.g. the larger of their
    `explanation_scale`s): each picture's own scale would make a weaker map look as strong.
    """
    values = torch.as_tensor(attributions, dtype=torch.float32)
    summed = values.sum(0) if values.ndim == 3 else values
    own = scale is None
    scale = explanation_scale(values) if own else float(scale)
    picture = as_picture(image)
    gray = picture.mean(-1) if picture.ndim == 3 else picture
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.8), layout="constrained")
    axes[0].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    note = rescale_note(image)
    axes[0].set_title("the model's input" + (f"\n{note}" if note else ""), fontsize=9)
    for ax, sign, cmap, name in ((axes[1], 1, "Greens", "for"), (axes[2], -1, "Reds", "against")):
        ax.imshow(gray, cmap="gray", alpha=0.35)
        evidence = ((sign * summed).clamp(min=0) / scale).clamp(max=1)
        ax.imshow(evidence.numpy(), cmap=cmap, alpha=0.8, vmin=0, vmax=1)
        ax.set_title(f"evidence {name} the class", fontsize=9)
    for ax in axes:
        ax.axis("off")
    which = "this map's 99th percentile of |attribution|" if own else "a scale shared with others"
    fig.suptitle(
        f"{title}\n(both maps: 0 .. {scale:.3g}, {which}; stronger pixels clipped)",
        fontsize=9,
    )
    return fig


Trace.drawer = show_trace  # `Trace.show()` draws with this (tracing itself imports no viz)
