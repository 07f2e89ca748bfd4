"""Shared fixtures: model folders built in temp dirs, and TorchServe's own handlers as reference."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch

from handlerkit import Context, samples

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def densenet_dir(tmp_path_factory) -> Path:
    """DenseNet-121 model folder (seeded weights unless torchvision's are cached)."""
    folder, _ = samples.densenet_folder(tmp_path_factory.mktemp("densenet"))
    return folder


@pytest.fixture(scope="session")
def densenet(densenet_dir):
    """An initialized handlerkit ImageClassifier on the DenseNet folder, and its context."""
    from handlerkit import ImageClassifier

    return ImageClassifier.for_folder(densenet_dir)


def ts_context(model_dir: Path, limit_max_image_pixels: bool = True, batch_size: int = 1):
    """A real `ts.context.Context`, as TorchServe's worker builds it for a model folder."""
    from ts.context import Context as TsContext
    from ts.context import RequestProcessor
    from ts.metrics.metrics_store import MetricsStore

    local = Context.local(model_dir)
    context = TsContext(
        local.model_name,
        str(model_dir),
        local.manifest,
        batch_size,
        None,
        "0.12.0",
        limit_max_image_pixels=limit_max_image_pixels,
        metrics=MetricsStore(uuid.uuid4(), local.model_name),
        model_yaml_config={},
    )
    context.request_processor = [RequestProcessor({}) for _ in range(64)]
    return context


def ts_initialize(handler, model_dir: Path, context=None):
    """Initialize a TorchServe handler the way its worker does: model folder on sys.path."""
    context = context or ts_context(model_dir)
    sys.modules.pop("model", None)  # each folder has its own model.py
    sys.path.insert(0, str(model_dir))
    try:
        handler.initialize(context)
    finally:
        sys.path.remove(str(model_dir))
        sys.modules.pop("model", None)
    return handler, context


@pytest.fixture(scope="session")
def ts_densenet(densenet_dir):
    """TorchServe's own ImageClassifier on the same DenseNet folder."""
    from ts.torch_handler.image_classifier import ImageClassifier

    return ts_initialize(ImageClassifier(), densenet_dir)


@pytest.fixture(scope="session")
def photo_rows() -> list[dict]:
    return [{"data": data} for data in samples.photos().values()]


from torchserve_battery import battery_store, real_torchserve  # noqa: E402, F401 (shared fixtures)
