"""Explanations: handlerkit's handlers answer `explain: True` with the attributions TorchServe's
VisionHandler computes (Captum Integrated Gradients, 15 steps), traced and drawn."""

from __future__ import annotations

import pytest
import torch

import handlerkit
from handlerkit import ImageClassifier, samples
from handlerkit.handlers.base import explain_target
from handlerkit.show import viz
from tests.fixtures.reference import ts_context, ts_initialize

PHOTO = samples.photo_bytes("chelsea")


@pytest.fixture(scope="module")
def folder():
    return samples.efficientnet_folder()


@pytest.fixture(scope="module")
def ours(folder):
    return ImageClassifier.for_folder(folder)


@pytest.fixture(scope="module")
def theirs(folder):
    from ts.torch_handler.image_classifier import ImageClassifier as TsImageClassifier

    return ts_initialize(TsImageClassifier(), folder, ts_context(folder))


def explain(handler_and_context, rows, headers=None):
    handler, context = handler_and_context
    if hasattr(context, "for_requests"):
        context.for_requests([headers or {"explain": "True"}] * len(rows))
    else:
        from ts.context import RequestProcessor

        context.request_processor = [RequestProcessor(headers or {"explain": "True"}) for _ in rows]
    return handler.handle(rows, context)


def test_explanations_equal_torchserves_for_the_default_target(ours, theirs):
    mine = explain(ours, [{"data": PHOTO}])
    reference = explain(theirs, [{"data": PHOTO}])
    assert torch.tensor(mine).shape == (1, 3, 224, 224)
    assert torch.equal(torch.tensor(mine), torch.tensor(reference))


def test_the_requests_target_picks_the_class_explained(ours, theirs):
    egyptian_cat = 285
    mine = explain(ours, [{"data": PHOTO, "target": egyptian_cat}])
    reference = explain(theirs, [{"data": PHOTO, "target": egyptian_cat}])
    assert torch.equal(torch.tensor(mine), torch.tensor(reference))
    default = explain(ours, [{"data": PHOTO}])
    assert not torch.equal(torch.tensor(mine), torch.tensor(default))
    # a form field arrives as bytes: TorchServe hands Captum the bytes, handlerkit the number
    as_field = explain(ours, [{"data": PHOTO, "target": b"285"}])
    assert torch.equal(torch.tensor(as_field), torch.tensor(mine))


def test_a_bad_row_keeps_its_error_and_the_others_are_explained(ours):
    answers = explain(ours, [{"data": b"junk"}, {"data": PHOTO}])
    assert "error" in answers[0]
    assert torch.tensor(answers[1]).shape == (3, 224, 224)


def test_a_target_that_is_not_a_number_is_the_clients_error():
    with pytest.raises(handlerkit.RequestError, match="not a class index"):
        explain_target(b"cat")
    assert explain_target(None) == 0 and explain_target(7) == 7 and explain_target("12 ") == 12


def test_describe_answers_like_torchserve(ours, theirs):
    assert explain(ours, [{"data": PHOTO}], {"describe": "True"}) == [None]
    assert explain(theirs, [{"data": PHOTO}], {"describe": "True"}) == [None]


def test_an_explanation_is_traced_as_its_own_stage_and_drawn(ours):
    with handlerkit.trace(ours[0]) as t:
        answers = explain(ours, [{"data": PHOTO}])
    stages = [r.stage for r in t if r.kind == "stage"]
    assert stages == ["preprocess", "explain"]
    assert t.find("explain").output == answers
    figure = viz.show_explanation(t.find("CenterCrop", row=0).output, answers[0], title="cat")
    assert len(figure.axes) == 3 and "99th percentile" in figure._suptitle.get_text()
    answer_again = ours[0].handle([{"data": PHOTO}], ours[1].for_requests([{}]))
    assert isinstance(answer_again[0], dict)  # without the header: the usual top-k answer
