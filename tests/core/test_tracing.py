"""Tracing records every stage, transform step and chosen layer, and never changes an answer."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import handlerkit
from handlerkit import StageRecord


def test_records_every_stage_and_step_in_order(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[:2], context)
    names = [(r.stage, r.row) for r in t]
    per_image = ["decode", "convert", "Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert names == (
        [("preprocess", None)]
        + [(step, 0) for step in per_image]
        + [(step, 1) for step in per_image]
        + [("stack", None), ("to_device", None), ("inference", None), ("postprocess", None)]
    )
    assert [r.kind for r in t if r.row is None] == ["stage", "step", "step", "stage", "stage"]
    assert all(isinstance(r, StageRecord) and r.seconds >= 0 for r in t)


def test_records_hold_values_and_summaries(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        answers = handler.handle(photo_rows[:2], context)
    assert t.find("Resize", row=0).output.size == (384, 256)  # PIL: (width, height)
    assert t.find("CenterCrop", row=1).shape == (224, 224, 3)
    normalized = t.find("Normalize", row=0)
    assert (normalized.device, normalized.dtype, normalized.shape) == (
        "cpu",
        "float32",
        (3, 224, 224),
    )
    assert t.find("ToTensor", row=0).output.max() <= 1.0
    assert t.find("preprocess").shape == (2, 3, 224, 224)
    assert t.find("inference").shape == (2, 1000)
    assert t.find("postprocess").output == answers
    assert t.find("inference").input.equal(t.find("preprocess").output)


def test_tracing_never_changes_an_output(densenet, photo_rows):
    handler, context = densenet
    plain = handler.handle(photo_rows, context)
    with handlerkit.trace(handler, layers=["features.denseblock1"]):
        traced = handler.handle(photo_rows, context)
    assert traced == plain


def test_records_are_detached_copies(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[:1], context)
    record = t.find("preprocess")
    before = record.output.clone()
    handler.preprocess(photo_rows[1:2]).mul_(0)  # the handler's later work can't reach the record
    assert record.output.equal(before) and not record.output.requires_grad


def test_hooks_are_removed_after_the_trace(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler, layers=["features.denseblock2"]) as t:
        handler.handle(photo_rows[:1], context)
    count = len(t)
    assert not handler.hooks
    assert not handler.model.get_submodule("features.denseblock2")._forward_hooks
    handler.handle(photo_rows[:1], context)
    assert len(t) == count


def test_layer_records(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler, layers=["features.denseblock1", "classifier"]) as t:
        handler.handle(photo_rows[:2], context)
    layers = t.of_kind("layer")
    assert [(r.stage, r.shape) for r in layers] == [
        ("features.denseblock1", (2, 256, 56, 56)),
        ("classifier", (2, 1000)),
    ]
    stages = [r.stage for r in t]
    assert (
        stages.index("inference")
        < stages.index("features.denseblock1")
        < stages.index("postprocess")
    )
    assert t.find("classifier").output.equal(t.find("inference").output)


def test_unknown_layer_names_the_choices(densenet):
    handler, _ = densenet
    with pytest.raises(KeyError, match="top-level layers: \\['features', 'classifier'\\]"):
        with handlerkit.trace(handler, layers=["nope"]):
            pass
    assert not handler.hooks


def test_summary_capture_keeps_no_tensors(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler, capture="summary") as t:
        handler.handle(photo_rows[:1], context)
    assert all(r.input is None and r.output is None for r in t)
    assert t.find("inference").shape == (1, 1000)


def test_low_level_hook_returns_a_removable_handle(densenet, photo_rows):
    handler, context = densenet
    seen = []
    handle = handler.register_trace_hook(lambda record: seen.append((record.stage, record.kind)))
    handler.handle(photo_rows[:1], context)
    handle.remove()
    handler.handle(photo_rows[:1], context)
    assert ("inference", "stage") in seen and ("Normalize", "step") in seen
    assert len(seen) == 11  # 3 stages + 6 image steps + stack + to_device


def test_trace_table_lists_every_record(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[:1], context)
    lines = t.table().splitlines()
    assert len(lines) == len(t) + 1
    assert lines[1].startswith("preprocess") and "1x3x224x224" in lines[1]
    assert "Trace(11 records)" in repr(t)


def test_bad_rows_are_traced_as_missing_steps(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        handler.handle([{"data": b"junk"}, photo_rows[0]], context)
    assert [r.row for r in t if r.stage == "Resize"] == [1]
    assert t.find("preprocess").shape == (1, 3, 224, 224)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_records_show_where_the_copy_happens(densenet_dir, photo_rows):
    from handlerkit import ImageClassifier

    handler, context = ImageClassifier.for_folder(densenet_dir, gpu_id=0)
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[:2], context)
    assert t.find("stack").device == "cpu"
    assert t.find("to_device").device == "cuda:0"
    assert t.find("inference").device == "cuda:0"
    assert t.find("inference").output.device.type == "cpu"  # records hold CPU copies


def test_a_value_passed_from_step_to_step_is_copied_once(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler) as t:
        handler.handle(photo_rows[:1], context)
    assert t.find("CenterCrop", row=0).input is t.find("Resize", row=0).output
    assert t.find("Normalize", row=0).input is t.find("ToTensor", row=0).output
    assert t.find("inference").input is t.find("preprocess").output
    assert t.find("Resize", row=0).output is not t.find("CenterCrop", row=0).output


def test_a_trace_never_keeps_the_handlers_own_values_alive():
    # A step's output, once the handler drops it, is freed even while the trace goes on; the
    # trace holds only its copy. (Holding the original too raised the peak memory of a full
    # trace of 32 photos on the tensor path by 23 MB more than its copies.)
    recorder = handlerkit.Trace("full")
    value = torch.ones(1000)
    recorder(StageRecord("ToDtype", "step", None, value, 0.0, None, started=0.0))
    original = weakref.ref(value)
    del value
    gc.collect()
    assert original() is None
    assert torch.equal(recorder[0].output, torch.ones(1000))
    # A new value at the freed address is copied afresh, never mistaken for the old one.
    other = torch.zeros(1000)
    recorder(StageRecord("Normalize", "step", other, other, 0.0, None, started=1.0))
    assert torch.equal(recorder[1].input, torch.zeros(1000))
