"""TorchServe's own handlers, built in this process as its worker builds them: the reference.

The tests compare handlerkit's answers with these; the benchmark compares its speed with them.
"""

from __future__ import annotations

import logging
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

from handlerkit import Context


def ts_context(
    model_dir: Path,
    limit_max_image_pixels: bool = True,
    batch_size: int = 1,
    gpu_id: int | None = None,
):
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
        gpu_id,
        "0.12.0",
        limit_max_image_pixels=limit_max_image_pixels,
        metrics=MetricsStore(uuid.uuid4(), local.model_name),
        model_yaml_config={},
    )
    context.request_processor = [RequestProcessor({}) for _ in range(64)]  # the worker's headers
    return context


def ts_initialize(handler, model_dir: Path, context=None):
    """(handler, context): a TorchServe handler initialized as its worker does it.

    The model folder is on `sys.path` while the handler imports its `model.py`.
    """
    context = context or ts_context(model_dir)
    sys.modules.pop("model", None)  # each folder has its own model.py
    sys.path.insert(0, str(model_dir))
    try:
        with quiet_torchserve():
            handler.initialize(context)
    finally:
        sys.path.remove(str(model_dir))
        sys.modules.pop("model", None)
    return handler, context


@contextmanager
def quiet_torchserve():
    """Silence TorchServe's start-up warnings (optional back-ends, missing label file)."""
    logger = logging.getLogger("ts")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def torchserve_mnist_class():
    """TorchServe's MNIST example handler, rebuilt on the real `ts` ImageClassifier."""
    from torchvision import transforms

    with quiet_torchserve():  # importing ts.torch_handler logs which back-ends it lacks
        from ts.torch_handler.image_classifier import ImageClassifier

    class MNISTDigitClassifierReference(ImageClassifier):  # TorchServe's example, as written
        image_processing = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
        )

        def postprocess(self, data):
            return data.argmax(1).tolist()

    return MNISTDigitClassifierReference
