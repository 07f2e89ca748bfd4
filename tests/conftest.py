"""Shared fixtures: model folders built in temp dirs, and TorchServe's own handlers as reference.

The reference handlers are built by tests/fixtures/reference.py, which the benchmark uses too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from handlerkit import samples
from tests.fixtures.reference import ts_initialize

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


@pytest.fixture(scope="session")
def ts_densenet(densenet_dir):
    """TorchServe's own ImageClassifier on the same DenseNet folder."""
    from ts.torch_handler.image_classifier import ImageClassifier

    return ts_initialize(ImageClassifier(), densenet_dir)


@pytest.fixture(scope="session")
def photo_rows() -> list[dict]:
    return samples.photo_rows(len(samples.PHOTO_NAMES))


@pytest.fixture(scope="session")
def mnist():
    """handlerkit's MNISTDigitClassifier (TorchServe's MNIST example) on the MNIST folder."""
    from handlerkit import MNISTDigitClassifier

    return MNISTDigitClassifier.for_folder(samples.MNIST_DIR)


@pytest.fixture(scope="session")
def uploads():
    """handlerkit's UploadedDigitClassifier on the MNIST folder."""
    from handlerkit import UploadedDigitClassifier

    return UploadedDigitClassifier.for_folder(samples.MNIST_DIR)


from tests.fixtures.torchserve_battery import battery_store, real_torchserve  # noqa: E402, F401 (shared fixtures)
