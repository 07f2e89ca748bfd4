"""Checks for notebook 04 (serve the handler with TorchServe), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from PIL import Image

from ... import digits
from ...course import samples
from .. import NotYet, Wrong, exercise


def blank_png() -> bytes:
    return samples.encode(Image.new("L", (28, 28), 255), "PNG")


@exercise("04.blank_in_batch", "send a blank page inside a batch; name the step that raises")
def check_blank_in_batch(answer) -> list[str]:
    if not isinstance(answer, tuple) or len(answer) != 2:
        raise Wrong("answer (the served answers, the name of the step that raises)")
    answers, step = answer
    if step is None or step is ...:
        raise NotYet("name the step of digits.UPLOAD_STEPS that raises on a blank page")
    image = Image.open(io.BytesIO(blank_png()))
    raising = None
    for name, function in digits.UPLOAD_STEPS:
        try:
            image = function(image)
        except ValueError:
            raising = name
            break
    if not answers or answers[-1].status != 400:
        got = answers[-1].status if answers else "nothing"
        raise Wrong(f"the last answer should be the blank page's: a 400, got {got}")
    if "no ink" not in answers[-1].text:
        raise Wrong(
            f"the blank page's 400 should say why (no ink); it says {answers[-1].text!r:.80}"
        )
    if len(answers) < 2 or any(a.status != 200 for a in answers[:-1]):
        raise Wrong("send the blank page with digits in the same batch: the digits must get 200s")
    if step != raising:
        raise Wrong(f"{step!r} does not raise on a blank page: step through digits.UPLOAD_STEPS")
    return [
        f"{len(answers) - 1} digits answered 200 beside the blank page's 400 (no ink)",
        f"{raising} is the step that raises",
    ]


@exercise("04.manifest", "write read_manifest(mar): the model entry of a .mar's MANIFEST.json")
def check_manifest(read_manifest) -> list[str]:
    import zipfile

    model = {"modelName": "fresh", "serializedFile": "w.pt", "handler": "h.py", "modelVersion": "7"}
    with tempfile.TemporaryDirectory() as work:
        mar = Path(work) / "fresh.mar"
        with zipfile.ZipFile(mar, "w") as archive:
            archive.writestr(
                "MAR-INF/MANIFEST.json", json.dumps({"runtime": "python", "model": model})
            )
            archive.writestr("h.py", "# a handler\n")
        got = read_manifest(mar)
    if got is None:
        raise NotYet("read_manifest returns None: return the manifest's model entry")
    if isinstance(got, dict) and "model" in got:
        raise Wrong("that is the whole manifest: answer only its 'model' entry")
    if got != model:
        raise Wrong(f"a fresh .mar's model entry is {model}; read_manifest gave {got!r:.120}")
    return ["a fresh .mar: its model entry, read from MAR-INF/MANIFEST.json"]
