"""handlerkit: see how a TorchServe handler turns a request into a prediction, stage by stage.

Handlers mirror TorchServe's; `trace(handler)` records the tensor between every stage.
Nothing here draws: a served handler imports this package without matplotlib or widgets
(`Trace.show()` loads `handlerkit.show` when it is called).
"""

from .context import Context
from .errors import ModelFault, ModelLoadError, RequestError, RowError, TooManyPixels
from .handlers.base import BaseHandler
from .handlers.image_classifier import ImageClassifier
from .handlers.mnist import MNISTDigitClassifier
from .handlers.tensor_classifier import TensorImageClassifier
from .handlers.uploads import UploadedDigitClassifier
from .handlers.vision import VisionHandler
from .tracing import StageRecord, Trace, add_layer_hook, trace

__all__ = [
    "BaseHandler",
    "Context",
    "ImageClassifier",
    "MNISTDigitClassifier",
    "ModelFault",
    "ModelLoadError",
    "RequestError",
    "RowError",
    "StageRecord",
    "TensorImageClassifier",
    "TooManyPixels",
    "Trace",
    "UploadedDigitClassifier",
    "VisionHandler",
    "add_layer_hook",
    "trace",
]
