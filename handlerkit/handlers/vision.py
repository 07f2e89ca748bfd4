"""VisionHandler: preprocess for images — decode each request's bytes, transform, stack a batch.

Steps per request: decode -> convert to the model's colour mode -> each transform of
`image_processing`; then stack the batch and copy it to the model's device.
"""

from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms

from ..errors import ModelFault, RequestError, RowError
from ..images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_FORMATS,
    check_resize,
    convert_mode,
    decode_image,
    pixel_limit,
    request_payload,
)
from .base import MODEL_FAULT, BaseHandler


class VisionHandler(BaseHandler):
    """A handler whose requests are images (bytes, bytearray, base64 text) or nested lists."""

    image_processing = transforms.Compose([transforms.ToTensor()])
    image_mode = "RGB"  # what the model expects; other modes are converted, not crashed on
    # (None: leave the mode alone, for handlers whose transforms deal with any mode)
    max_image_pixels: int | None = DEFAULT_MAX_PIXELS  # on until initialize reads the context
    image_formats = IMAGE_FORMATS  # what decode opens; others are refused, naming their format
    decode_size: int | None = None  # None: decode at full size, as TorchServe (see decode_image)

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
        self.tensor_rows = {i for i, row in enumerate(data) if _is_tensor_row(row)}
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
        return decode_image(payload, self.max_image_pixels, self.image_formats, self.decode_size)

    def convert(self, image: Image.Image) -> Image.Image:
        return convert_mode(image, self.image_mode)

    def transform(self, image: Image.Image, idx: int) -> torch.Tensor:
        """Apply `image_processing`; when traced, one transform at a time so each is recorded."""
        check_transforms(self.image_processing, image.size)
        if not self.hooks or not isinstance(self.image_processing, transforms.Compose):
            return self.step("image_processing", self.image_processing, image, idx)
        for transform in self.image_processing.transforms:
            image = self.step(type(transform).__name__, transform, image, idx)
        return image

    def get_insights(self, tensor_data: torch.Tensor, inputs, target: int = 0) -> list:
        """Integrated Gradients of the batch for class `target`, as TorchServe's VisionHandler
        computes them (Captum, 15 steps, a baseline of zeros in the model's normalized input
        space: the mean colour Normalize subtracts, not black)."""
        from captum.attr import IntegratedGradients  # optional: pip install handlerkit[explain]

        if getattr(self, "ig", None) is None or self.ig.forward_func is not self.model:
            self.ig = IntegratedGradients(self.model)
        return self.ig.attribute(tensor_data, target=target, n_steps=15).tolist()

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self.device)

    def _same_shape(self, tensors: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Keep the rows whose tensor has the batch's shape; reject the others.

        The shape comes from the handler, never from a vote of the rows: the shape its pipeline
        gave the image rows (when they agree), else the first shape the model takes, tried on
        one row of each shape. A shape the model cannot take is that request's fault (400) when
        another shape runs, and the server's (500) when none does.
        """
        by_shape: dict[tuple, list[int]] = {}
        for idx, tensor in tensors.items():
            by_shape.setdefault(tuple(tensor.shape), []).append(idx)
        if len(by_shape) < 2:
            return tensors
        made = {s for s, rows in by_shape.items() if set(rows) - self.tensor_rows}
        if len(made) == 1:  # the pipeline fixes the shape (e.g. Resize + CenterCrop)
            expected, refused = made.pop(), {}
        else:
            expected, refused = self._shape_the_model_takes(tensors, by_shape)
        for shape, rows in by_shape.items():
            if shape != expected:
                error = _wrong_shape(shape, expected, refused.get(shape))
                for idx in rows:
                    self.reject(idx, error)
                    del tensors[idx]
        return tensors

    def _shape_the_model_takes(self, tensors, by_shape) -> tuple[tuple | None, dict]:
        """Try one row of each shape in the model: (the first shape it takes, {shape: error})."""
        errors = {}
        for shape, rows in by_shape.items():
            try:
                self.step("try_model", self.inference, tensors[rows[0]].unsqueeze(0), rows[0])
                return shape, errors
            except Exception as error:  # noqa: BLE001 - the model's own refusal is the reason
                errors[shape] = str(error).splitlines()[0]
        return None, errors


def _wrong_shape(shape: tuple, expected: tuple | None, model_error: str | None) -> RowError:
    """The error for the rows of `shape` when the batch runs `expected` (None: no shape ran)."""
    if expected is None:
        return ModelFault(
            f"the model cannot run on this input of shape {shape}: {model_error}; {MODEL_FAULT}"
        )
    if model_error is not None:
        return RequestError(f"the model cannot run on this input of shape {shape}: {model_error}")
    return RequestError(
        f"this request's tensor has shape {shape}, the batch's is {expected} (what this "
        "handler's preprocessing makes, or the first shape the model takes); send an input of "
        "that shape"
    )


def _is_tensor_row(row) -> bool:
    """A row whose payload is a nested list: a tensor sent by the client, not an image."""
    return isinstance(row, dict) and isinstance(row.get("data") or row.get("body"), list)


def check_transforms(transform, size: tuple[int, int]) -> None:
    """Refuse an image that a Resize of the pipeline would blow up (see `check_resize`).

    Follows the image's size through Resize and CenterCrop; stops at a step it cannot predict.
    """
    steps = transform.transforms if isinstance(transform, transforms.Compose) else [transform]
    for step in steps:
        if isinstance(step, transforms.Resize):
            size = check_resize(size, step.size, step.max_size)
        elif isinstance(step, transforms.CenterCrop):
            size = (step.size[1], step.size[0])
        elif not isinstance(step, _SAME_SIZE):
            return


_SAME_SIZE = (transforms.ToTensor, transforms.Normalize, transforms.ConvertImageDtype)


def float_tensor(payload: list) -> torch.Tensor:
    """A list payload (nested numbers) -> a float tensor, taken as the model's input."""
    try:
        tensor = torch.tensor(payload, dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise RequestError(
            f"the list payload is not a rectangular array of numbers: {err}"
        ) from None
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        raise RequestError(
            f"the list payload holds {bad} NaN or infinite value(s); send finite numbers"
        )
    return tensor
