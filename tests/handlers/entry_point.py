"""A function entry point in TorchServe's documented style: a module-level handler object
and `handle(data, context)` that initializes it and runs its stages one by one."""

from torchvision import transforms
from ts.torch_handler.image_classifier import ImageClassifier


class _Digits(ImageClassifier):
    image_processing = transforms.Compose(
        [transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )


_service = _Digits()


def handle(data, context):
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    batch = _service.preprocess(data)
    scores = _service.inference(batch)
    return [{"digit": int(row.argmax())} for row in scores]
