"""ImageClassifier: ImageNet-style preprocessing and a softmax top-k answer per request.

preprocess: Resize 256 -> CenterCrop 224 -> ToTensor -> Normalize (ImageNet mean/std);
postprocess: softmax -> top-k -> {label: probability} for each request.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision import transforms

from .vision import VisionHandler

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ImageClassifier(VisionHandler):
    """Answers each image with its `topk` most likely labels and their probabilities."""

    topk = 5
    image_processing = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )

    def set_max_result_classes(self, topk: int) -> None:
        self.topk = topk

    def get_max_result_classes(self) -> int:
        return self.topk

    def postprocess(self, data: torch.Tensor) -> list[dict[str, float]]:
        """Logits -> probabilities -> the top k as {label: probability}, best first."""
        probabilities = F.softmax(data, dim=1)
        k = min(self.topk, probabilities.shape[1])  # never ask for more classes than exist
        probs, classes = torch.topk(probabilities, k, dim=1)
        return [
            {self.label(c): p for c, p in zip(row_classes, row_probs)}
            for row_classes, row_probs in zip(classes.tolist(), probs.tolist())
        ]

    def label(self, index: int) -> str:
        """The name of class `index` from index_to_name.json, else the index as text."""
        if self.mapping is None:
            return str(index)
        return self.mapping.get(str(index), str(index))


class EfficientNetLiteClassifier(ImageClassifier):
    """ImageClassifier for EfficientNet-Lite0's packaged weights: inputs scaled to [-1, 1].

    The weights were trained in TensorFlow on (x - 127) / 128, i.e. mean = std = 0.5 here, not
    ImageNet's mean and std (notebook 01 compares the two); only the normalization differs.
    """

    image_processing = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        ]
    )
