"""A ts-based handler with a bug in postprocess: it indexes the label list out of range."""

from torchvision import transforms
from ts.torch_handler.image_classifier import ImageClassifier

LABELS = ["zero", "one", "two"]  # the bug: MNIST has ten digits


class BuggyDigitHandler(ImageClassifier):
    image_processing = transforms.Compose(
        [transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )

    def postprocess(self, data):
        return [LABELS[i] for i in data.argmax(1).tolist()]
