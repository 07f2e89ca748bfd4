"""A learner's handler written against TorchServe's own `ts` package (for the offline tests).

MNIST digits through ts's ImageClassifier: grayscale 28x28, MNIST's mean/std, the digit as answer.
"""

from torchvision import transforms
from ts.torch_handler.image_classifier import ImageClassifier


class DigitHandler(ImageClassifier):
    image_processing = transforms.Compose(
        [transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )

    def postprocess(self, data):
        return data.argmax(1).tolist()
