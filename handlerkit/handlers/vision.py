"""VisionHandler: preprocess for images — decode each request's bytes, transform, stack a batch.

Steps per request: decode -> convert to the model's colour mode -> each transform of
`image_processing`; then stack the batch and copy it to the model's device.
"""

from __future__ import annotations

from collections import Counter

import torch
from PIL import Image
from torchvision import transforms

from ..errors import RequestError
from ..images import DEFAULT_MAX_PIXELS, convert_mode, decode_image, pixel_limit, request_payload
from .base import BaseHandler


class VisionHandler(BaseHandler):
    """A handler whose requests are images (bytes, bytearray, base64 text) or nested lists."""

    image_processing = transforms.Compose([transforms.ToTensor()])
    image_mode = "RGB"  # what the model expects; other modes are converted, not crashed on
    # (None: leave the mode alone, for handlers whose transforms deal with any mode)
    max_image_pixels: int | None = DEFAULT_MAX_PIXELS  # on until initialize reads the context

    def initialize(self, context) -> None:
        super().initialize(context)
        # TorchServe turns Pillow's limit off globally when the property is missing; we keep
        # it on (per handler, not global) unless the context sets it to False.
        self.max_image_pixels = pixel_limit(context.system_properties)

    def preprocess(self, data: list) -> torch.Tensor | None:
        """Request rows -> a batch tensor on the device; bad rows are rejected, not raised."""
        tensors = self.preprocess_rows(data)
        if not tensors:
            return None
        batch = self.step("stack", torch.stack, list(tensors.values()))
        return self.step("to_device", self._to_device, batch)

    def preprocess_rows(self, data: list) -> dict[int, torch.Tensor]:
        """`preprocess_one` for each row: {row index: tensor} of the rows that can be batched."""
        self.row_errors = {}
        tensors = {}
        for idx, row in enumerate(data):
            try:
                tensors[idx] = self.preprocess_one(row, idx)
            except RequestError as error:
                self.reject(idx, error)
            except Exception as error:  # noqa: BLE001 - one bad row must not fail the batch
                self.reject(idx, RequestError(f"could not preprocess this request: {error!r}"))
        return self._same_shape(tensors)

    def preprocess_one(self, row, idx: int) -> torch.Tensor:
        """One request row -> one image tensor (a list payload is taken as the tensor itself)."""
        payload = request_payload(row)
        if isinstance(payload, list):
            return self.step("as_tensor", float_tensor, payload, idx)
        image = self.step("decode", self.decode, payload, idx)
        if self.image_mode is not None:
            image = self.step("convert", self.convert, image, idx)
        return self.transform(image, idx)

    def decode(self, payload: bytes) -> Image.Image:
        return decode_image(payload, self.max_image_pixels)

    def convert(self, image: Image.Image) -> Image.Image:
        return convert_mode(image, self.image_mode)

    def transform(self, image: Image.Image, idx: int) -> torch.Tensor:
        """Apply `image_processing`; when traced, one transform at a time so each is recorded."""
        if not self.hooks or not isinstance(self.image_processing, transforms.Compose):
            return self.step("image_processing", self.image_processing, image, idx)
        for transform in self.image_processing.transforms:
            image = self.step(type(transform).__name__, transform, image, idx)
        return image

    def get_insights(self, tensor_data: torch.Tensor, inputs, target: int = 0) -> list:
        """Integrated Gradients of the batch for class `target`, as TorchServe's VisionHandler
        computes them (Captum, 15 steps, a black baseline in the model's input space)."""
        from captum.attr import IntegratedGradients  # optional: pip install handlerkit[explain]

        if getattr(self, "ig", None) is None or self.ig.forward_func is not self.model:
            self.ig = IntegratedGradients(self.model)
        return self.ig.attribute(tensor_data, target=target, n_steps=15).tolist()

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self.device)

    def _same_shape(self, tensors: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Keep the rows whose tensor has the batch's most common shape; reject the others."""
        if len(tensors) < 2:
            return tensors
        shapes = Counter(tuple(t.shape) for t in tensors.values())
        if len(shapes) == 1:
            return tensors
        expected = shapes.most_common(1)[0][0]
        for idx, tensor in list(tensors.items()):
            if tuple(tensor.shape) != expected:
                self.reject(
                    idx,
                    RequestError(
                        f"this request's tensor has shape {tuple(tensor.shape)}, the batch's is "
                        f"{expected}; send an input of the model's size"
                    ),
                )
                del tensors[idx]
        return tensors


def float_tensor(payload: list) -> torch.Tensor:
    """A list payload (nested numbers) -> a float tensor, taken as the model's input."""
    try:
        return torch.tensor(payload, dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise RequestError(
            f"the list payload is not a rectangular array of numbers: {err}"
        ) from None
