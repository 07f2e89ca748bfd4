"""Checks for notebook 06 (your own handler, offline), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ...course import samples
from .. import NotYet, Wrong, exercise


def one_of_each_label() -> dict[int, bytes]:
    """One held-out digit PNG per label 0..9."""
    found: dict[int, bytes] = {}
    for index in range(0, 5000, 5):
        found.setdefault(samples.digit_label(index), samples.digit_png(index))
        if len(found) == 10:
            return dict(sorted(found.items()))
    return dict(sorted(found.items()))


@exercise("06.postprocess_bug", "put the bug in postprocess: which stage, which digits still 200")
def check_postprocess_bug(answer) -> list[str]:

    from ...run.offline import OfflineServer
    from ..capstone import model_folder

    if not isinstance(answer, dict) or set(answer) != {"handler", "stage", "ok_labels"}:
        raise Wrong("answer {'handler': source, 'stage': name, 'ok_labels': set of labels}")
    with tempfile.TemporaryDirectory() as work:
        folder = model_folder(answer["handler"], Path(work))
        with OfflineServer({"buggy": folder}) as offline:
            if offline.load_error("buggy") is not None:
                raise Wrong(f"your handler does not load: {offline.load_error('buggy').message}")
            answers = {
                label: offline.predict("buggy", png) for label, png in one_of_each_label().items()
            }
    stages = {a.error.stage for a in answers.values() if a.error is not None}
    ok = {label for label, a in answers.items() if a.status == 200}
    if stages != {"postprocess"}:
        raise Wrong(
            f"the bug must be in postprocess; your handler fails in {sorted(stages) or 'nothing'}"
        )
    if answer["stage"] != "postprocess":
        raise Wrong(f"answer.error.stage names 'postprocess', not {answer['stage']!r}")
    if set(answer["ok_labels"]) != ok:
        raise Wrong(f"ok_labels {sorted(answer['ok_labels'])} are not the labels answered 200")
    return [f"the bug fails in postprocess; labels {sorted(ok)} still get 200"]


@exercise("06.multipart", "write multipart(png): a form body and headers TorchServe reads as data")
def check_multipart(multipart) -> list[str]:
    from ...run.offline import OfflineServer

    png = samples.digit_png(1805)
    got = multipart(png)
    if got is None:
        raise NotYet("multipart returns None: return (body bytes, headers dict)")
    if not isinstance(got, tuple) or len(got) != 2 or not isinstance(got[0], (bytes, bytearray)):
        raise Wrong(f"answer (body as bytes, headers as a dict); got {got!r:.80}")
    body, headers = got
    kind = {k.lower(): v for k, v in dict(headers).items()}.get("content-type", "")
    if not kind.startswith("multipart/form-data") or "boundary=" not in kind:
        raise Wrong(f"Content-Type must be multipart/form-data; boundary=...; got {kind!r}")
    boundary = kind.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode("latin-1")
    if not bytes(body).rstrip(b"\r\n").endswith(b"--" + boundary + b"--"):
        raise Wrong(
            f"the body does not end with the closing delimiter --{boundary.decode('latin-1')}--: "
            "TorchServe's form decoder hands the handler only the fields a delimiter closes, so "
            "without it the handler gets no data"
        )
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        plain = offline.predict("mnist", png, {"Content-Type": "image/png"})
        form = offline.predict("mnist", bytes(body), dict(headers))
    if (form.status, form.body) != (plain.status, plain.body):
        raise Wrong(
            f"the form was answered {form.status} {form.text[:100]}, the PNG {plain.status}: "
            "is the field named data, and the boundary the one in the header?"
        )
    return ["a fresh PNG sent as a form: the same status and bytes as sent plain"]
