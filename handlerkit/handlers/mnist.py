"""MNISTDigitClassifier: TorchServe's MNIST example handler — 28x28 grayscale in, a digit out.

preprocess: ToTensor -> Normalize with MNIST's mean/std; postprocess: argmax, one int per request.
"""

from __future__ import annotations

import torch
from torchvision import transforms

from ..stats import MNIST_MEAN, MNIST_STD
from .image_classifier import ImageClassifier


class MNISTDigitClassifier(ImageClassifier):
    """The handler of TorchServe's MNIST example: expects MNIST-like 28x28 digit images."""

    image_mode = "L"  # one channel: colour uploads are converted instead of crashing conv1
    image_processing = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(MNIST_MEAN, MNIST_STD)]
    )

    def postprocess(self, data: torch.Tensor) -> list[int]:
        """The most likely digit of each request."""
        return data.argmax(1).tolist()
