"""Checks for notebook 07 (where your handler goes next), one function per exercise.
Part of `handlerkit.exercises.checks`, which `check` imports on first use.
"""

from __future__ import annotations

from ...course import samples
from .. import NotYet, Wrong, exercise
from ..capstone import photo_of
from .nb04_torchserve import blank_png


@exercise(
    "07.everywhere", "write ask_everywhere(body): {engine: (status, bytes)} from every server"
)
def check_everywhere(ask_everywhere) -> list[str]:
    from ...run.offline import OfflineServer

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

    from ... import UploadedDigitClassifier

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
        if isinstance(answer, dict) and type(answer.get("digit")) is not int:
            got = answer.get("digit")
            raise Wrong(
                f"{name}: the digit is {got!r:.40}, a {type(got).__name__}: answer a plain int "
                "(int(...)); LitServe writes the answer as JSON"
            )
        if not isinstance(answer, dict) or answer.get("digit") != want:
            raise Wrong(
                f"{name}: your API answers {answer!r:.80}, the handler {{'digit': {want}}}"
                f"{' (is the digit an int?)' if isinstance(answer, dict) else ''}"
            )
    return [f"{len(sent)} fresh uploads, a photo among them: the same digit as the handler"]
