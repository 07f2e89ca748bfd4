"""Checks for notebook 08 (what the model looked at), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import digits
from ...course import samples
from .. import NotYet, Wrong, exercise, whole_number
from .nb05_time import digit_handler


def explain(handler, context, data: bytes, target: int) -> torch.Tensor:
    """The attributions `handle` answers with `explain: True` for class `target`."""
    rows = [{"data": data, "target": target}]
    return torch.as_tensor(handler.handle(rows, context.for_requests([{"explain": "True"}]))[0])


@exercise("08.completeness", "write completeness(handler, context, data, target): IG's two sides")
def check_completeness(completeness) -> list[str]:
    handler, context = digit_handler()
    index = 2405
    data, target = samples.digit_png(index), samples.digit_label(index)
    got = completeness(handler, context, data, target)
    if got is None:
        raise NotYet(
            "completeness returns None: return (sum of the attributions, logit difference)"
        )
    try:
        attribution_sum, difference = (float(v) for v in got)
    except (TypeError, ValueError):
        raise Wrong(
            f"answer two numbers, (attribution sum, logit difference); got {got!r:.80}"
        ) from None
    want_sum = float(explain(handler, context, data, target).sum())
    with torch.no_grad():
        x = handler.preprocess([{"data": data}])
        logits = handler.model(x)[0, target] - handler.model(torch.zeros_like(x))[0, target]
        probabilities = (
            F.softmax(handler.model(x), 1)[0, target]
            - F.softmax(handler.model(torch.zeros_like(x)), 1)[0, target]
        )
        black = torch.full_like(x, (0 - digits.MEAN[0]) / digits.STD[0])  # a pixel of 0
        from_black = handler.model(x)[0, target] - handler.model(black)[0, target]
    if abs(attribution_sum - want_sum) > 1e-3 * max(1.0, abs(want_sum)):
        raise Wrong(
            f"the attributions for digit {index}, class {target}, sum to {want_sum:.4f}, not "
            f"{attribution_sum:.4f}: sum the whole map handle answers with explain: True and target"
        )
    if abs(difference - float(probabilities)) < 1e-4:
        raise Wrong(
            "your difference is of probabilities: Integrated Gradients explains the model's "
            "output, "
            "here Net's log-probabilities; take model(x) - model(zeros) at target"
        )
    if abs(difference - float(from_black)) < 1e-4 * max(1.0, abs(float(from_black))):
        raise Wrong(
            "your difference starts from a black image (a pixel of 0 is (0 - 0.1307) / 0.3081 = "
            "-0.42 after normalize); Integrated Gradients' baseline is zeros in the normalized "
            "space, MNIST's mean grey: take model(x) - model(torch.zeros_like(x)) at target"
        )
    if abs(difference - float(logits)) > 1e-3 * max(1.0, abs(float(logits))):
        raise Wrong(
            f"the output difference for digit {index}, class {target}, is not {difference:.4f}: "
            "take model(x)[0, target] - model(zeros_like(x))[0, target], x the preprocessed input"
        )
    return [
        f"a fresh digit ({index}, class {target}): attribution sum {want_sum:.2f}, "
        f"output difference {float(logits):.2f}, gap {abs(want_sum - float(logits)):.2f}"
    ]


@exercise("08.wrong_digit", "find a held-out digit the model gets wrong; explain answer and label")
def check_wrong_digit(answer) -> list[str]:
    if not isinstance(answer, dict) or set(answer) != {"index", "for_answer", "for_label"}:
        raise Wrong("answer {'index': i, 'for_answer': attributions, 'for_label': attributions}")
    index = whole_number(answer["index"])
    if index is None:
        raise Wrong(
            f"index is {answer['index']!r:.40}, a {type(answer['index']).__name__}: "
            "answer the digit's index as a whole number, e.g. 505"
        )
    if not 0 <= index < 5000 or index % 5:
        raise Wrong(f"index {index!r} is not a held-out digit: those are 0, 5, 10, ..., 4995")
    handler, context = digit_handler()
    data, label = samples.digit_png(index), samples.digit_label(index)
    said = handler.handle([{"data": data}], context.for_requests([{}]))[0]["digit"]
    if said == label:
        raise Wrong(
            f"digit {index} (label {label}) is answered {said}: right. "
            "Search for one the model gets wrong"
        )
    for key, target in (("for_answer", said), ("for_label", label)):
        if answer[key] is None or answer[key] is ...:
            raise NotYet(f"{key}: explain digit {index} for class {target}")
        got = torch.as_tensor(answer[key]).float()
        want = explain(handler, context, data, target)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4):
            zero = explain(handler, context, data, 0)
            hint = (
                " (it is the map for class 0: send the target)"
                if got.shape == zero.shape and torch.allclose(got, zero, atol=1e-4)
                else ""
            )
            raise Wrong(f"{key} is not the explanation of digit {index} for class {target}{hint}")
    return [
        f"digit {index}: label {label}, answered {said}",
        "both explanations are the right maps",
    ]
