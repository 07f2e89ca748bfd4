"""The capstone's check: the learner's handler.py, served offline and in a real TorchServe.
Sits on top of handlerkit.offline and handlerkit.serve; `checks` registers it as "03.capstone".
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image

from ..course import samples
from ..run.offline import OfflineServer
from ..run.torchserve.archive import archive
from ..run.torchserve.errors import ServeError
from ..run.torchserve.process import find_java
from ..run.torchserve.server import TorchServe
from . import Wrong

HEADERS = {"Content-Type": "application/octet-stream"}
DIGITS = [0, 1200, 2405, 3610, 4815]  # held-out digits (index % 5 == 0)


def photo_of(index: int, size: int = 180, at: tuple[int, int] = (170, 40)) -> bytes:
    """MNIST digit `index` redrawn as a 400x300 JPEG photo: dark ink on off-white paper."""
    ink = samples.digit(index).resize((size, size), Image.Resampling.BICUBIC)
    paper = Image.new("RGB", (400, 300), (238, 234, 222))
    paper.paste((25, 30, 60), at, mask=ink)
    return samples.encode(paper, "JPEG")


def requests() -> dict[str, tuple[bytes, int | None]]:
    """What the check sends: name -> (body, the right digit, or None for the blank page)."""
    sent = {f"digit {i} (PNG)": (samples.digit_png(i), samples.digit_label(i)) for i in DIGITS}
    sent["photo of digit 700 (JPEG)"] = (photo_of(700), samples.digit_label(700))
    sent["blank page (PNG)"] = (samples.encode(Image.new("L", (28, 28), 255), "PNG"), None)
    return sent


def model_folder(handler_py: str, dest: Path) -> Path:
    """`data/mnist` (model.py, weights) with the learner's handler.py, in `dest`."""
    folder = dest / "my_mnist"
    folder.mkdir(parents=True)
    for name in ("model.py", "mnist_cnn.pt"):
        shutil.copyfile(samples.MNIST_DIR / name, folder / name)
    (folder / "handler.py").write_text(handler_py)
    return folder


def digit_in(body: bytes) -> int | None:
    """The digit an answer names: a bare integer, or the "digit" of a JSON object."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict):
        value = value.get("digit")
    return value if isinstance(value, int) else None


def check_capstone(handler_py: str) -> list[str]:
    """Serve `handler_py` offline, check its answers, then compare with a real TorchServe."""
    if not isinstance(handler_py, str) or "class " not in handler_py:
        raise Wrong("HANDLER_PY must be the text of your handler.py, with your handler class")
    with tempfile.TemporaryDirectory(prefix="handlerkit-capstone-") as work:
        folder = model_folder(handler_py, Path(work))
        sent = requests()
        with OfflineServer({"mnist": folder}) as offline:
            failed = offline.load_error("mnist")
            if failed is not None:
                raise Wrong(f"your handler.py does not load: {failed.message}")
            passed = own_hooks(offline.handler("mnist"))
            here = {
                name: offline.predict("mnist", body, HEADERS) for name, (body, _) in sent.items()
            }
        passed += right_digits(sent, here)
        passed.append(in_torchserve(folder, Path(work), sent, here))
    return passed


def own_hooks(handler) -> list[str]:
    """The handler class must write its own preprocess and postprocess."""
    missing = [hook for hook in ("preprocess", "postprocess") if not _own(type(handler), hook)]
    if missing:
        raise Wrong(
            f"{type(handler).__name__} inherits {' and '.join(missing)}: write your own "
            "(the capstone asks for your preprocess and your postprocess)"
        )
    return [f"{type(handler).__name__} loads, with its own preprocess and postprocess"]


def _own(cls: type, hook: str) -> bool:
    """True when `hook` is defined in handler.py itself, not inherited from ts or handlerkit."""
    for klass in cls.__mro__:
        if hook in vars(klass):
            return not klass.__module__.startswith(("ts.", "handlerkit."))
    return False


def right_digits(sent: dict, here: dict) -> list[str]:
    """Every digit and the photo answered 200 with the right digit; the blank page not a 200."""
    wrong = []
    for name, (_, label) in sent.items():
        answer = here[name]
        if label is None:
            if answer.ok:
                wrong.append(
                    f"{name}: answered 200 {answer.text[:60]}; a page with no ink has no digit"
                )
            elif not 400 <= answer.status < 500:
                wrong.append(
                    f"{name}: status {answer.status} ({failure(answer)[:120]}); a blank page is "
                    "the client's bad input, a 4xx: catch the step's ValueError and raise "
                    "PredictionException(str(error), 400) (from ts.utils.util)"
                )
        elif answer.status != 200:
            wrong.append(f"{name}: status {answer.status}: {failure(answer)}")
        elif digit_in(answer.body) != label:
            wrong.append(f"{name}: answered {answer.text[:60]}, the digit is {label}")
    if wrong:
        raise Wrong("\n".join(["offline, in this process:"] + wrong))
    return [
        f"offline: the {len(sent) - 2} MNIST digits and the photo answered with the right digit",
        f"offline: the blank page answered {here['blank page (PNG)'].status}, the client's fault",
    ]


def failure(answer) -> str:
    """Why an answer failed: the handler's stage and message when it raised, else the body."""
    if answer.error is not None:
        return f"your {answer.error.stage} raised: {answer.error.message}"[:300]
    return " ".join(answer.text.split())[:160]


def in_torchserve(folder: Path, work: Path, sent: dict, here: dict) -> str:
    """Archive the folder, serve it in TorchServe, and compare status and bytes with `here`."""
    try:
        find_java()
    except ServeError:
        return "no Java here: the comparison with a real TorchServe is skipped"
    mar = archive(folder, work / "store", "mnist")
    with TorchServe(mar.parent, {"mnist": mar.name}) as server:
        url = f"{server.inference_url}/predictions/mnist"
        served = {name: post(url, body) for name, (body, _) in sent.items()}
    differ = [
        f"{name}: TorchServe {served[name][0]} {served[name][1][:60]!r}, "
        f"offline {here[name].status} {here[name].body[:60]!r}"
        for name in sent
        if served[name] != (here[name].status, here[name].body)
    ]
    if differ:
        raise Wrong("\n".join(["TorchServe and the offline server answer differently:"] + differ))
    return f"TorchServe gives the same {len(sent)} answers, status and bytes, as the offline server"


def post(url: str, body: bytes) -> tuple[int, bytes]:
    """(status, the body's bytes) from a real server, unparsed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, headers=HEADERS, method="POST")
    try:
        with opener.open(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
