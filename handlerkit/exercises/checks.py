"""The checks of the series' exercises, one function per exercise, registered by name.
Sits on top of the handlers, offline and serve; `check` imports it on first use.

Each check calls the learner's function on fresh inputs of its own (or recomputes the value the
learner was asked for) and says which part is right; the messages name the usual mistakes.
"""

from __future__ import annotations

import inspect
import io

import torch
import torch.nn.functional as F
from PIL import Image

from .. import Context, digits, samples
from . import NotYet, Wrong, exercise
from .capstone import check_capstone, photo_of

# ---- 03 · a customized MNIST handler ------------------------------------------------------------


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
        if answer["digit"] != want["digit"]:
            raise Wrong(
                f"row {row}: digit {answer['digit']!r}, but the likeliest digit is {want['digit']}"
            )
        top = answer["top3"]
        if not isinstance(top, dict) or list(top) != list(want["top3"]):
            raise Wrong(
                f"row {row}: top3 has the keys {list(top) if isinstance(top, dict) else top!r}; "
                "it needs the three likeliest digits (as ints), likeliest first"
            )
        values = torch.tensor([float(v) for v in top.values()])
        if torch.allclose(values, data[row][list(top)], atol=1e-4):
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
        answers = handler.handle(photos, context.for_requests([{}] * len(photos)))
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


# ---- 05 · where the time goes -------------------------------------------------------------------


def digit_handler():
    """handlerkit's upload-ready MNIST handler and its context: small, quick fresh inputs."""
    from .. import UploadedDigitClassifier

    return UploadedDigitClassifier.for_folder(samples.MNIST_DIR)


@exercise("05.stage_share", "write stage_share(trace): each stage's share of the call's time")
def check_stage_share(stage_share) -> list[str]:
    from .. import trace

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
    from .. import trace

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


# ---- 08 · what the model looked at --------------------------------------------------------------


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
    index = answer["index"]
    if not isinstance(index, int) or not 0 <= index < 5000 or index % 5:
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


# ---- 04 · serve the handler with TorchServe -----------------------------------------------------


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
    if "no ink" not in str(answers[-1].body):
        raise Wrong(
            f"the blank page's 400 should say why (no ink); it says {answers[-1].body!r:.80}"
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
    import json
    import tempfile
    import zipfile
    from pathlib import Path

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


# ---- 06 · your own handler, offline -------------------------------------------------------------


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
    import tempfile
    from pathlib import Path

    from ..offline import OfflineServer
    from .capstone import model_folder

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
    from ..offline import OfflineServer

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
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        plain = offline.predict("mnist", png, {"Content-Type": "image/png"})
        form = offline.predict("mnist", bytes(body), dict(headers))
    if (form.status, form.body) != (plain.status, plain.body):
        raise Wrong(
            f"the form was answered {form.status} {form.text[:100]}, the PNG {plain.status}: "
            "is the field named data, and the boundary the one in the header?"
        )
    return ["a fresh PNG sent as a form: the same status and bytes as sent plain"]


# ---- 07 · where your handler goes next ----------------------------------------------------------


@exercise(
    "07.everywhere", "write ask_everywhere(body): {engine: (status, bytes)} from every server"
)
def check_everywhere(ask_everywhere) -> list[str]:
    from ..offline import OfflineServer

    sent = {
        "digit 2810": samples.digit_png(2810),
        "blank page": blank_png(),
        "not an image": b"oops",
    }
    with OfflineServer({"mnist": samples.MNIST_DIR}) as offline:
        want = {name: offline.predict("mnist", body) for name, body in sent.items()}
    passed = []
    for name, body in sent.items():
        got = ask_everywhere(body)
        if got is None:
            raise NotYet("ask_everywhere returns None: return {engine: (status, body bytes)}")
        if not isinstance(got, dict) or len(got) < 3:
            raise Wrong(f"answer one (status, bytes) per engine, for all three; got {got!r:.100}")
        for engine, answer in got.items():
            status, data = answer[0], answer[-1]
            if not isinstance(data, (bytes, bytearray)):
                raise Wrong(f"{engine}: answer the body's bytes, not {type(data).__name__}")
            if (status, bytes(data)) != (want[name].status, want[name].body):
                raise Wrong(
                    f"{name}: {engine} answered {status} {bytes(data)[:60]!r}, "
                    f"TorchServe's rules say {want[name].status} {want[name].body[:60]!r}"
                )
        passed.append(
            f"{name}: {', '.join(got)} all answer {want[name].status} with the same bytes"
        )
    return passed


@exercise("07.litapi", "write DigitAPI: setup, decode_request, predict, encode_response")
def check_litapi(api_class) -> list[str]:
    import base64

    from .. import UploadedDigitClassifier

    methods = ("setup", "decode_request", "predict", "encode_response")
    own = [
        k for k in api_class.__mro__ if k is not object and not k.__module__.startswith("litserve")
    ]
    written = [m for m in methods if any(m in vars(k) for k in own)]
    if not written:
        raise NotYet(f"{api_class.__name__} has none of {', '.join(methods)} yet: write them")
    if len(written) < len(methods):
        missing = [m for m in methods if m not in written]
        raise Wrong(f"{api_class.__name__} still needs {', '.join(missing)}")
    api = api_class()
    api.setup("cpu")
    reference, context = UploadedDigitClassifier.for_folder(samples.MNIST_DIR)
    sent = {f"digit {i}": samples.digit_png(i) for i in (15, 1230, 3335, 4440)}
    sent["photo of digit 700"] = photo_of(700)
    for name, data in sent.items():
        request = {"data": base64.b64encode(data).decode()}
        x = api.decode_request(request)
        if x is None:
            raise NotYet("decode_request returns None: decode the base64 and prepare the upload")
        answer = api.encode_response(api.predict(x))
        if answer is None:
            raise NotYet("predict or encode_response returns None")
        want = reference.handle([{"data": data}], context.for_requests([{}]))[0]["digit"]
        if not isinstance(answer, dict) or answer.get("digit") != want:
            raise Wrong(
                f"{name}: your API answers {answer!r:.80}, the handler {{'digit': {want}}}"
                f"{' (is the digit an int?)' if isinstance(answer, dict) else ''}"
            )
    return [f"{len(sent)} fresh uploads, a photo among them: the same digit as the handler"]


# ---- 09 · awkward uploads ------------------------------------------------------------------------
# (kept together at the end of the file: the block for notebook 09)


def awkward_payloads() -> tuple[bytes, dict[str, str], list[str]]:
    """(the image, {what: base64 text as a tool writes it}, [texts that are not base64])."""
    import base64

    raw = samples.digit_png(3210)
    plain = base64.b64encode(raw).decode()
    written = {
        "plain base64": plain,
        "MIME base64 (a line break every 76 characters)": base64.encodebytes(raw).decode(),
        "MIME base64 with CRLF line breaks": base64.encodebytes(raw).decode().replace("\n", "\r\n"),
        "a data: URL (canvas.toDataURL)": "data:image/png;base64," + plain,
        "a data: URL with spaces around it": "  data:image/png;base64," + plain + "\n",
    }
    junk = ["hello, this is not an image", "data:image/png;base64,@@@@", plain[:-4] + "!!!!"]
    return raw, written, junk


@exercise("09.decode_payload", "write decode_payload(text): base64 as tools write it -> bytes")
def check_decode_payload(decode_payload) -> list[str]:
    raw, written, junk = awkward_payloads()
    for what, text in written.items():
        hint = (
            "the prefix up to 'base64,' is not base64: strip it first"
            if "data:" in what
            else "drop the line breaks and spaces before decoding"
        )
        try:
            got = decode_payload(text)
        except Exception as error:  # noqa: BLE001 - a good payload refused: say which and why
            raise Wrong(
                f"{what}: refused with {type(error).__name__}: {str(error)[:80]}\n{hint}"
            ) from None
        if got is None:
            raise NotYet("decode_payload returns None: return the decoded bytes")
        if not isinstance(got, (bytes, bytearray)):
            raise Wrong(f"{what}: return bytes, not {type(got).__name__}")
        if bytes(got) != raw:
            raise Wrong(f"{what}: decoded to {len(got)} bytes, not the PNG's {len(raw)}\n{hint}")
    for text in junk:
        try:
            got = decode_payload(text)
        except ValueError:  # binascii.Error and handlerkit's RequestError are ValueErrors
            continue
        raise Wrong(
            f"{text[:30]!r}... is not base64, but decode_payload returned "
            f"{len(got) if isinstance(got, (bytes, bytearray)) else got!r} bytes: refuse it "
            "(raise ValueError; base64.b64decode(..., validate=True) does), or the handler "
            "would try to open junk"
        )
    return [
        f"{len(written)} ways tools write base64: the same {len(raw)} PNG bytes each time",
        f"{len(junk)} texts that are not base64: refused with ValueError",
    ]


def status_quiz() -> dict[str, bytes]:
    """Five uploads for notebook 09's quiz: predict the status ImageClassifier answers each."""
    photo = samples.photo("coffee")
    half = samples.encode(photo, "PNG")
    return {
        "coffee.gif": samples.encode(photo.convert("P"), "GIF"),
        "a 1x3000 PNG": samples.zeros_png(1, 3000),
        "coffee.ico": samples.encode(photo.resize((64, 64)), "ICO"),
        "the first half of coffee.png": half[: len(half) // 2],
        "a JPEG declaring 12000x9000": samples.jpeg_declaring(12_000, 9_000),
    }


# handler.py of a model folder that serves handlerkit's ImageClassifier (as notebook 09 writes it)
CLASSIFIER_HANDLER = (
    "from handlerkit import ImageClassifier\n\n\nclass Handler(ImageClassifier):\n    pass\n"
)

STATUS_HINTS = {
    200: "it opens and is answered: its format is on the list and nothing about it is too big",
    400: "the request is at fault, but not for its size or its format: can it be decoded?",
    413: "too many pixels: in the header (the pixel limit), or after a Resize (a thin strip)",
    415: "the bytes are an image, in a format outside the allow-list",
    500: "the model fails on every row: the server's fault",
}


@exercise("09.statuses", "predict the status ImageClassifier answers to each of five uploads")
def check_statuses(predicted) -> list[str]:
    import tempfile
    from pathlib import Path

    from ..offline import OfflineServer

    quiz = status_quiz()
    if not isinstance(predicted, dict) or set(predicted) != set(quiz):
        names = ", ".join(repr(name) for name in quiz)
        raise Wrong(f"answer {{name: status}} for each upload of status_quiz(): {names}")
    if any(status is ... or status is None for status in predicted.values()):
        left = [name for name, status in predicted.items() if status is ... or status is None]
        raise NotYet(f"still to predict: {', '.join(left)}")
    with tempfile.TemporaryDirectory() as work:
        folder = samples.efficientnet_folder(Path(work) / "efficientnet")
        (folder / "handler.py").write_text(CLASSIFIER_HANDLER)
        with OfflineServer({"classifier": folder}) as server:
            answers = {name: server.predict("classifier", body) for name, body in quiz.items()}
    wrong = [name for name in quiz if predicted[name] != answers[name].status]
    if wrong:
        lines = [f"{len(quiz) - len(wrong)} of {len(quiz)} right; still wrong:"]
        for name in wrong:
            hint = STATUS_HINTS.get(answers[name].status, "send it and read the answer")
            lines.append(f"{name}: not {predicted[name]!r}; hint: {hint}")
        raise Wrong("\n".join(lines))
    return [f"{name}: {answers[name].status} {said(answers[name])}" for name in quiz]


def said(answer) -> str:
    """The start of an answer's message, or its top-1 label."""
    body = answer.json()
    text = body.get("error") or next(iter(body), "") if isinstance(body, dict) else body
    return str(text)[:70]
