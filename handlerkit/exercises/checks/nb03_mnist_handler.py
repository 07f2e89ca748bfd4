"""Checks for notebook 03 (a customized MNIST handler), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from ... import Context, digits, trace
from ...course import samples
from .. import NotYet, Wrong, exercise
from ..capstone import check_capstone, photo_of


def fresh_logits(rows: int = 6, seed: int = 3) -> torch.Tensor:
    """Log-probabilities like Net's output, some rows sure of their digit and some not."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, 10, generator=generator)
    logits[::2] *= 6  # even rows: one digit far ahead (sure); odd rows: close calls (unsure)
    return F.log_softmax(logits, dim=1)


def top3_wanted(data: torch.Tensor) -> list[dict]:
    probabilities = F.softmax(data.float(), dim=1)
    wanted = []
    for p in probabilities:
        values, indexes = p.topk(3)
        answer = {"digit": int(indexes[0]), "top3": dict(zip(indexes.tolist(), values.tolist()))}
        if values[0] < 0.5:
            answer["unsure"] = True
        wanted.append(answer)
    return wanted


@exercise("03.top3", "write top3(data): the digit, its top three {digit: probability}, unsure")
def check_top3(top3) -> list[str]:
    data = fresh_logits()
    got = top3(data.clone())
    if got is None:
        raise NotYet("top3 returns None: write its body (return one dict per row)")
    if not isinstance(got, list) or len(got) != len(data):
        raise Wrong(
            f"top3 must return a list with one answer per row: {len(data)} rows in, got {got!r:.80}"
        )
    for row, (answer, want) in enumerate(zip(got, top3_wanted(data))):
        if not isinstance(answer, dict) or "digit" not in answer or "top3" not in answer:
            raise Wrong(f"row {row}: answer {{'digit': ..., 'top3': {{...}}}}, got {answer!r:.80}")
        if type(answer["digit"]) is not int:  # JSON has no tensors; json.dumps refuses them
            raise Wrong(
                f"row {row}: digit is {answer['digit']!r:.40}, a {type(answer['digit']).__name__}: "
                "make it a plain int (int(...)), as TorchServe answers JSON"
            )
        if answer["digit"] != want["digit"]:
            raise Wrong(
                f"row {row}: digit {answer['digit']!r}, but the likeliest digit is {want['digit']}"
            )
        top = answer["top3"]
        plain_json(row, top)
        if not isinstance(top, dict) or list(top) != list(want["top3"]):
            raise Wrong(
                f"row {row}: top3 has the keys {list(top) if isinstance(top, dict) else top!r}; "
                "it needs the three likeliest digits (as ints), likeliest first"
            )
        values = torch.tensor(list(top.values()))
        if torch.allclose(values, data[row][torch.tensor(list(top))], atol=1e-4):
            raise Wrong(
                f"row {row}: top3 holds log-probabilities (Net ends in log_softmax): apply softmax"
            )
        if not torch.allclose(values, torch.tensor(list(want["top3"].values())), atol=1e-4):
            raise Wrong(
                f"row {row}: the probabilities in top3 are not softmax(data) of those digits"
            )
        if answer.get("unsure", False) != want.get("unsure", False):
            best = max(want["top3"].values())
            raise Wrong(
                f'row {row}: top probability {best:.2f}; "unsure": True belongs only below 0.5'
            )
    return [
        f"{len(data)} fresh rows: one answer per row, the right digit",
        "top3: the three likeliest digits with their probabilities, likeliest first",
        "unsure: True on the close calls only",
    ]


def ran_steps(t, steps: list[str], want: list[str], rows: int) -> list[str]:
    """The upload steps a traced call ran on its photos: `want` when every photo ran them in order
    (or stopped early because a step rejected it), else the first photo's steps that differ."""
    rejected = {r.row for r in t if r.kind == "error"}
    for row in range(rows):
        ran = [r.stage for r in t if r.kind == "step" and r.row == row and r.stage in steps]
        complete = ran == want or (row in rejected and ran and ran == want[: len(ran)])
        if not complete:
            return ran
    return want


def plain_json(row: int, top) -> None:
    """Raise `Wrong` when top3's keys are not plain ints or its values not plain floats."""
    if not isinstance(top, dict):
        return
    keys = {type(key).__name__ for key in top if type(key) is not int}
    if keys:
        raise Wrong(
            f"row {row}: the keys of top3 are {', '.join(sorted(keys))}s: make them plain ints "
            "(indexes.tolist()), the digits as JSON can carry them"
        )
    values = {type(value).__name__ for value in top.values() if type(value) is not float}
    if values:
        raise Wrong(
            f"row {row}: the probabilities in top3 are {', '.join(sorted(values))}s: make them "
            "plain floats (values.tolist())"
        )


@exercise("03.without", "write without(step): a MyUploadHandler subclass that skips that step")
def check_without(without) -> list[str]:
    steps = [name for name, _ in digits.UPLOAD_STEPS]
    before = list(digits.UPLOAD_STEPS)
    scores = []
    context = Context.local(samples.MNIST_DIR)
    photos = [{"data": photo_of(i)} for i in range(0, 1000, 50)]
    labels = [samples.digit_label(i) for i in range(0, 1000, 50)]
    for left_out in ("invert_if_light", "crop_to_ink", "center_by_mass"):
        handler_class = without(left_out)
        if handler_class is None:
            raise NotYet(
                "without returns None: return a new class (class Skip(MyUploadHandler): ...)"
            )
        if digits.UPLOAD_STEPS != before:
            digits.UPLOAD_STEPS[:] = before
            raise Wrong(
                "without changed digits.UPLOAD_STEPS itself (restored now): build a new list"
            )
        if not inspect.isclass(handler_class):
            raise Wrong(f"without({left_out!r}) must return a class, got {handler_class!r:.60}")
        have = [name for name, _ in getattr(handler_class, "upload_steps", [])]
        want = [name for name in steps if name != left_out]
        if have != want:
            raise Wrong(f"without({left_out!r}).upload_steps runs {have}; it should run {want}")
        handler = handler_class()
        handler.initialize(context)
        with trace(handler, capture="summary") as t:
            answers = handler.handle(photos, context.for_requests([{}] * len(photos)))
        ran = ran_steps(t, steps, want, len(photos))
        if ran != want:
            raise Wrong(
                f"without({left_out!r}) says upload_steps {have}, but on a photo its handler ran "
                f"{ran or 'no upload step'}: keep MyUploadHandler's transform, which runs "
                "self.upload_steps, and change only upload_steps"
            )
        right = sum(
            isinstance(a, dict) and a.get("digit") == label for a, label in zip(answers, labels)
        )
        scores.append(f"without {left_out}: {right}/{len(photos)} photos of digits answered right")
    return ["each class runs every step but the one left out, in order"] + scores


@exercise(
    "03.capstone", "write HANDLER_PY: a ts-style handler.py with your preprocess and postprocess"
)
def check_capstone_handler(handler_py) -> list[str]:
    return check_capstone(handler_py)
