"""show/timing.py, which the benchmark (bench/) runs: its tables, its memory accounting, and the
trace(max_rows=...) it relies on."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import handlerkit
from handlerkit.show.timing import benchmark, captured_bytes


def test_max_rows_keeps_copies_of_the_first_rows_only(densenet, photo_rows):
    handler, context = densenet
    with handlerkit.trace(handler, capture="full", max_rows=1) as t:
        answers = handler.handle(photo_rows[:3], context)
    assert t.find("Normalize", row=0).output is not None
    for row in (1, 2):
        record = t.find("Normalize", row=row)
        assert record.output is None and record.input is None
        assert (record.dtype, record.shape) == ("float32", (3, 224, 224))  # the summary stays
    assert t.find("preprocess").output.shape == (3, 3, 224, 224)  # batch records: full copies
    assert t.find("postprocess").output == answers
    with handlerkit.trace(handler, capture="full") as everything:
        handler.handle(photo_rows[:3], context)
    assert captured_bytes(t) < captured_bytes(everything)
    assert [(r.stage, r.row) for r in t] == [(r.stage, r.row) for r in everything]


def test_max_rows_must_be_a_count():
    with pytest.raises(ValueError, match="max_rows"):
        handlerkit.Trace("full", max_rows=-1)


def test_captured_bytes_counts_tensor_and_image_copies_not_request_bytes():
    tensor, image = torch.zeros(2, 3, 4, dtype=torch.float32), Image.new("RGB", (10, 5))
    value = {"data": b"x" * 1000, "items": [tensor, image]}
    assert captured_bytes(value) == 2 * 3 * 4 * 4
    assert captured_bytes(value, Image.Image) == 10 * 5 * 4  # Pillow keeps RGB in 4 bytes
    assert captured_bytes(Image.new("L", (10, 5)), Image.Image) == 50


def test_benchmark_prints_speed_and_stage_tables_for_mnist(capsys):
    benchmark(["mnist"], [1, 2], repeats=1)  # python -m bench --models mnist --batches 1,2 ...
    out = capsys.readouterr().out
    for variant in ("torchserve", "handlerkit+trace(summary)", "uploads+trace(full)"):
        assert f"    2  {variant} " in out
    assert "uploads (UploadedDigitClassifier): where the time goes" in out
    assert "  crop_to_ink" in out and "not forward / forward" in out


def test_densenet_compares_the_pil_and_tensor_paths(capsys):
    benchmark(["densenet"], [2], repeats=1)  # python -m bench --models densenet --batch 2 ...
    out = capsys.readouterr().out
    assert "tensor path (TensorImageClassifier): where the time goes" in out
    assert "PIL path ms" in out and "speed-up" in out
    assert "same top-5 (in order) on 5/5" in out
