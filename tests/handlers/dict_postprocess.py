"""A ts-based MNIST handler whose postprocess returns a dict instead of a list (a common slip)."""

from torchvision import transforms
from ts.torch_handler.image_classifier import ImageClassifier


class DictDigitHandler(ImageClassifier):
    image_processing = transforms.Compose(
        [transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )

    def postprocess(self, data):
        return {"digit": int(data.argmax(1)[0])}
