"""A ts-based MNIST handler that reads its label file's mapping directly (None without one)."""

from torchvision import transforms
from ts.torch_handler.image_classifier import ImageClassifier


class LabelledDigitHandler(ImageClassifier):
    image_processing = transforms.Compose(
        [transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )

    def postprocess(self, data):
        return [self.mapping[str(i)] for i in data.argmax(1).tolist()]
