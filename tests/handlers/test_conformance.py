"""handlerkit's handlers answer exactly as TorchServe's own (the installed `ts` package) do."""

from __future__ import annotations

import base64

import pytest

from handlerkit import ImageClassifier, samples
from tests.fixtures.reference import ts_context


@pytest.mark.parametrize("name", samples.PHOTO_NAMES)
@pytest.mark.parametrize("key", ["data", "body"])
def test_single_photo_matches_torchserve(densenet, ts_densenet, name, key):
    handler, context = densenet
    ts_handler, ts_ctx = ts_densenet
    rows = [{key: samples.photo_bytes(name)}]
    assert handler.handle(rows, context) == ts_handler.handle(rows, ts_ctx)


def test_batch_matches_torchserve(densenet, ts_densenet, photo_rows):
    handler, context = densenet
    ts_handler, ts_ctx = ts_densenet
    rows = photo_rows + [{"body": photo_rows[0]["data"]}]
    ours = handler.handle(rows, context)
    theirs = ts_handler.handle(rows, ts_ctx)
    assert ours == theirs
    assert len(ours) == len(rows) and all(len(answer) == 5 for answer in ours)
    assert list(ours[0]) == list(theirs[0])  # same key order: best first


def test_preprocessed_tensors_match_torchserve(densenet, ts_densenet, photo_rows):
    handler, _ = densenet
    ts_handler, _ = ts_densenet
    assert handler.preprocess(photo_rows).equal(ts_handler.preprocess(photo_rows))


def test_base64_and_bytearray_rows_match_torchserve(densenet, ts_densenet):
    handler, context = densenet
    ts_handler, ts_ctx = ts_densenet
    raw = samples.photo_bytes("coffee")
    rows = [{"data": base64.b64encode(raw).decode()}, {"body": bytearray(raw)}]
    assert handler.handle(rows, context) == ts_handler.handle(rows, ts_ctx)


def test_nested_list_rows_match_torchserve(densenet, ts_densenet, photo_rows):
    handler, context = densenet
    ts_handler, ts_ctx = ts_densenet
    tensor = handler.preprocess(photo_rows[:1])[0]
    rows = [{"data": tensor.tolist()}]
    assert handler.handle(rows, context) == ts_handler.handle(rows, ts_ctx)


@pytest.mark.parametrize("make_context", ["ts_context", "mock_context"])
def test_accepts_torchserve_contexts(densenet_dir, densenet, photo_rows, make_context):
    from ts.torch_handler.unit_tests.test_utils.mock_context import MockContext

    local = densenet[1]
    if make_context == "ts_context":
        context = ts_context(densenet_dir)
    else:
        model = local.manifest["model"]
        context = MockContext(model["serializedFile"], str(densenet_dir), model["modelFile"])
    handler = ImageClassifier()
    handler.initialize(context)
    assert handler.handle(photo_rows[:2], context) == densenet[0].handle(photo_rows[:2], local)
    assert context.metrics is not None
