"""handlerkit: see how a TorchServe handler turns a request into a prediction, stage by stage.

Handlers mirror TorchServe's; `trace(handler)` records the tensor between every stage.
"""

from .show import viz  # noqa: E402,F401,I001 - registers the drawer `Trace.show()` uses
from .context import Context
from .errors import ModelLoadError, RequestError, TooManyPixels
from .handlers.tensor_classifier import TensorImageClassifier
from .handlers.base import BaseHandler
from .handlers.image_classifier import ImageClassifier
from .handlers.mnist import MNISTDigitClassifier
from .handlers.uploads import UploadedDigitClassifier
from .handlers.vision import VisionHandler
from .tracing import StageRecord, Trace, add_layer_hook, trace

__all__ = [
    "BaseHandler",
    "Context",
    "ImageClassifier",
    "MNISTDigitClassifier",
    "ModelLoadError",
    "RequestError",
    "StageRecord",
    "TensorImageClassifier",
    "TooManyPixels",
    "Trace",
    "UploadedDigitClassifier",
    "VisionHandler",
    "add_layer_hook",
    "trace",
]
