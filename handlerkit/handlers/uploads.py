"""UploadedDigitClassifier: the customized MNIST handler, for digits people actually upload.

preprocess runs the steps of `handlerkit.digits` (flatten alpha, grayscale, invert, crop, fit,
centre, normalize) so an upload looks like MNIST; postprocess returns digit + probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

from ..digits import UPLOAD_STEPS
from ..errors import RequestError
from .mnist import MNISTDigitClassifier


class UploadedDigitClassifier(MNISTDigitClassifier):
    """MNIST's model behind preprocessing that turns any upload into a 28x28 MNIST-style digit."""

    image_mode = None  # the first upload step handles every mode (alpha, palette, RGB, L)
    upload_steps = UPLOAD_STEPS
    # The digit ends up 20x20: decode big uploads smaller (JPEG at 1/2..1/8 scale) while both
    # sides stay at least this, so a tiny file declaring 9000x9000 costs megabytes, not gigabytes.
    decode_size = 1024

    def transform(self, image: Image.Image, idx: int) -> torch.Tensor:
        """Each upload step in turn, each one traced."""
        try:
            for name, step in self.upload_steps:
                image = self.step(name, step, image, idx)
        except ValueError as error:  # e.g. a blank image: no ink to find
            raise RequestError(str(error)) from None
        return image

    def postprocess(self, data: torch.Tensor) -> list[dict]:
        """{"digit": the most likely digit, "probabilities": the ten class probabilities}."""
        probabilities = F.softmax(data.float(), dim=1)
        return [
            {"digit": int(row.argmax()), "probabilities": row.tolist()} for row in probabilities
        ]
