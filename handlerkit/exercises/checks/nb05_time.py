"""Checks for notebook 05 (where the time goes), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

from ...course import samples
from .. import NotYet, Wrong, exercise


def digit_handler():
    """handlerkit's upload-ready MNIST handler and its context: small, quick fresh inputs."""
    from ... import UploadedDigitClassifier

    return UploadedDigitClassifier.for_folder(samples.MNIST_DIR)


@exercise("05.stage_share", "write stage_share(trace): each stage's share of the call's time")
def check_stage_share(stage_share) -> list[str]:
    from ... import trace

    handler, context = digit_handler()
    rows = samples.digit_rows(6)
    with trace(handler, capture="summary") as t:
        handler.handle(rows, context.for_requests([{}] * len(rows)))
    got = stage_share(t)
    if got is None:
        raise NotYet("stage_share returns None: return {stage: share}")
    stages = [r for r in t if r.kind == "stage"]
    total = sum(r.seconds for r in stages)
    want = {r.stage: r.seconds / total for r in stages}
    if not isinstance(got, dict) or set(got) != set(want):
        keys = sorted(got) if isinstance(got, dict) else got
        raise Wrong(
            f"stage_share must answer one share per stage, {sorted(want)}; got {keys!r:.120}"
        )
    added = sum(float(v) for v in got.values())
    if abs(added - 1) > 1e-6:
        raise Wrong(
            f"your shares add up to {added:.3f}, not 1: divide each stage's seconds by the sum "
            "over "
            "the stages (records of kind 'stage'; the steps are inside preprocess, count them once)"
        )
    off = [s for s in want if abs(float(got[s]) - want[s]) > 1e-6]
    if off:
        raise Wrong(f"the shares of {off} are not that stage's seconds / all stages' seconds")
    return [f"a fresh trace of {len(rows)} digits: the right share for {', '.join(want)}"]


@exercise(
    "05.kept_rows", "write kept_rows(trace): the requests whose per-image values a trace kept"
)
def check_kept_rows(kept_rows) -> list[str]:
    from ... import trace

    handler, context = digit_handler()
    rows = samples.digit_rows(6)
    passed = []
    for options in (
        {"capture": "full", "max_rows": 2},
        {"capture": "full", "max_rows": 4},
        {"capture": "full"},
    ):
        with trace(handler, **options) as t:
            handler.handle(rows, context.for_requests([{}] * len(rows)))
        got = kept_rows(t)
        if got is None:
            raise NotYet("kept_rows returns None: return the set of request indexes")
        want = {r.row for r in t if r.row is not None and r.output is not None}
        if set(got) != want:
            hint = ""
            if set(got) == {r.row for r in t if r.row is not None}:
                hint = ": every request has step records; only some keep their values (output)"
            raise Wrong(
                f"with {options} kept_rows says {sorted(got)}, the trace kept {sorted(want)}{hint}"
            )
        passed.append(f"{options}: rows {sorted(want)} of {len(rows)}")
    return passed
