"""`handlerkit.trace` works on any handler: a ts-based class, a function entry point, unchanged.

Each is traced through its stages, the steps of its `image_processing` Compose and a chosen layer;
the answers do not change, and the handler is exactly as before once the trace ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision import transforms

import handlerkit
from handlerkit import StageRecord, samples
from handlerkit.offline import OfflineServer

HANDLERS = Path(__file__).parents[1] / "fixtures" / "handlers"
DIGITS = [samples.digit_png(i) for i in (0, 1)]


@pytest.fixture(scope="module")
def server():
    handlers = {"ts": HANDLERS / "ts_mnist_handler.py", "entry": HANDLERS / "entry_point.py"}
    models = {name: samples.MNIST_DIR for name in handlers}
    with OfflineServer(models, handler={k: str(v) for k, v in handlers.items()}) as server:
        for name in handlers:  # the first call sets attributes on the handler (ts's handle)
            server.predict(name, DIGITS[0])
        yield server


def state(obj) -> dict:
    return dict(vars(obj))


def assert_unchanged(obj, before: dict, cls) -> None:
    assert type(obj) is cls
    after = vars(obj)
    assert after.keys() == before.keys()
    assert all(after[key] is before[key] for key in before)


def test_a_ts_handler_is_traced_stage_by_stage_step_by_step_and_by_layer(server):
    handler = server.handler("ts")
    assert "ts.torch_handler" in type(handler).__mro__[1].__module__  # written against ts
    plain = server.batch("/predictions/ts", [(d, None) for d in DIGITS])
    before, cls = state(handler), type(handler)
    with handlerkit.trace(handler, layers=["conv1"]) as t:
        traced = server.batch("/predictions/ts", [(d, None) for d in DIGITS])
    assert [a.body for a in traced] == [a.body for a in plain]
    assert [(r.stage, r.kind, r.row) for r in t] == [
        ("preprocess", "stage", None),
        *[(step, "step", row) for row in (0, 1) for step in ("Grayscale", "ToTensor", "Normalize")],
        ("inference", "stage", None),
        ("conv1", "layer", None),
        ("postprocess", "stage", None),
    ]
    assert t.find("preprocess").shape == (2, 1, 28, 28)
    assert t.find("conv1").shape == (2, 32, 26, 26)
    assert t.find("Normalize", row=1).input.equal(t.find("ToTensor", row=1).output)
    assert t.find("postprocess").output == [int(a.body) for a in traced]
    assert_unchanged(handler, before, cls)
    assert "image_processing" not in vars(handler) and "preprocess" not in vars(handler)


def test_a_function_entry_point_is_traced_through_its_module(server):
    module = server.handler("entry")
    original_handle = module.handle
    service = module._service
    before, cls = state(service), type(service)
    plain = server.predict("entry", DIGITS[1])
    with handlerkit.trace(module, layers=["fc1"]) as t:
        traced = server.predict("entry", DIGITS[1])
    assert traced.body == plain.body
    stages = [r.stage for r in t if r.kind == "stage"]
    assert stages == ["handle", "preprocess", "inference"]
    assert t.find("fc1").shape == (1, 128)
    assert [r.stage for r in t if r.kind == "step"] == ["Grayscale", "ToTensor", "Normalize"]
    assert module.handle is original_handle
    assert_unchanged(service, before, cls)


def test_a_trace_that_fails_still_restores_the_handler(server):
    handler = server.handler("ts")
    before, cls = state(handler), type(handler)
    with pytest.raises(KeyError, match="no layer 'nope'"):
        with handlerkit.trace(handler, layers=["nope"]):
            pass
    assert_unchanged(handler, before, cls)


def test_a_failing_stage_leaves_its_inputs_in_the_trace(server):
    handler = server.handler("ts")
    with handlerkit.trace(handler) as t:
        answer = server.predict("ts", b"\x00 not a png")
    assert answer.error.stage == "preprocess"
    assert t.records == []  # preprocess raised before any step finished
    with handlerkit.trace(handler) as t:
        answer = server.batch("/predictions/ts", [(DIGITS[0], None), (b"\x00 junk", None)])
    assert [r.stage for r in t] == ["Grayscale", "ToTensor", "Normalize"]  # row 0 got through


class _InPlace:
    """A minimal ts-style handler whose Normalize works in place, as some handlers do."""

    def __init__(self) -> None:
        self.image_processing = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.5,), (0.25,), inplace=True)]
        )

    def preprocess(self, data):
        return torch.stack([self.image_processing(row) for row in data])

    def inference(self, data):
        return data.mean(dim=(1, 2, 3))

    def postprocess(self, data):
        return data.tolist()


def test_a_step_that_works_in_place_is_recorded_with_its_real_input_and_output():
    from PIL import Image

    handler = _InPlace()
    image = Image.new("L", (4, 4), 255)
    with handlerkit.trace(handler) as t:
        handler.postprocess(handler.inference(handler.preprocess([image])))
    normalize = t.find("Normalize", row=0)
    assert normalize.input.max().item() == 1.0  # ToTensor's output, before Normalize overwrote it
    assert normalize.output.max().item() == 2.0  # (1 - 0.5) / 0.25
    assert t.find("ToTensor", row=0).output.max().item() == 1.0
    assert "image_processing" in vars(handler)  # an instance attribute is restored, not deleted
    assert isinstance(vars(handler)["image_processing"], transforms.Compose)
    assert type(vars(handler)["image_processing"]) is transforms.Compose


def test_a_low_level_hook_sees_one_record(server):
    handler = server.handler("ts")
    seen: list[StageRecord] = []
    with handlerkit.trace(handler):
        pass
    hooks = handlerkit.tracing.instrument(handler)
    with hooks as registered:
        handle = registered.add(seen.append)
        server.predict("ts", DIGITS[0])
        handle.remove()
    assert [r.stage for r in seen if r.kind == "stage"] == [
        "preprocess",
        "inference",
        "postprocess",
    ]
    assert all(isinstance(r, StageRecord) and r.seconds >= 0 for r in seen)
