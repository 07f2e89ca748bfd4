"""Checks for notebook 09 (awkward uploads), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ...course import samples
from .. import NotYet, Wrong, exercise, raised, whole_number

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


# What each way of writing base64 needs, said when a decoder gets it wrong.
PAYLOAD_HINTS = {
    "plain base64": "plain base64 has no 'data:...,' prefix and no line breaks: "
    "base64.b64decode(text) alone decodes it; look for a prefix only when there is one",
    "MIME base64 (a line break every 76 characters)": "drop the line breaks before decoding",
    "MIME base64 with CRLF line breaks": "drop the line breaks (\\r\\n as well as \\n) "
    "before decoding",
    "a data: URL (canvas.toDataURL)": "the prefix up to 'base64,' is not base64: strip it first",
    "a data: URL with spaces around it": "strip the spaces and line break around the text, "
    "then the prefix up to 'base64,'",
}


@exercise("09.decode_payload", "write decode_payload(text): base64 as tools write it -> bytes")
def check_decode_payload(decode_payload) -> list[str]:
    raw, written, junk = awkward_payloads()
    for what, text in written.items():
        hint = PAYLOAD_HINTS[what]
        try:
            got = decode_payload(text)
        except Exception as error:  # noqa: BLE001 - a good payload refused: say which and why
            said, *where = raised(error)
            lines = [f"{what}: refused; {said[:120]}", *where, hint]
            raise Wrong("\n".join(lines)) from None
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

    from ...run.offline import OfflineServer

    quiz = status_quiz()
    if not isinstance(predicted, dict) or set(predicted) != set(quiz):
        names = ", ".join(repr(name) for name in quiz)
        raise Wrong(f"answer {{name: status}} for each upload of status_quiz(): {names}")
    if any(status is ... or status is None for status in predicted.values()):
        left = [name for name, status in predicted.items() if status is ... or status is None]
        raise NotYet(f"still to predict: {', '.join(left)}")
    words = {n: s for n, s in predicted.items() if whole_number(s) is None}
    if words:
        name, status = next(iter(words.items()))
        like = int(status) if str(status).strip().isdigit() else 415
        raise Wrong(
            f"{name}: {status!r} is a {type(status).__name__}; answer each status as a whole "
            f"number, like {like} (Answer.status is an int)"
        )
    with tempfile.TemporaryDirectory() as work:
        folder = samples.efficientnet_folder(Path(work) / "efficientnet")
        (folder / "handler.py").write_text(CLASSIFIER_HANDLER)
        with OfflineServer({"classifier": folder}) as server:
            answers = {name: server.predict("classifier", body) for name, body in quiz.items()}
    predicted = {name: whole_number(status) for name, status in predicted.items()}
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
