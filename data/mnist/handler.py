"""The handler TorchServe loads for this model folder (torch-model-archiver --handler handler.py).

It is handlerkit's upload-ready MNIST handler, unchanged: what runs in the notebooks runs here.
"""

from handlerkit import UploadedDigitClassifier


class MNISTUploadHandler(UploadedDigitClassifier):
    """TorchServe instantiates the one class defined in this file and calls its `handle`."""
