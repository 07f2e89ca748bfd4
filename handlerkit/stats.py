"""Dataset statistics that preprocessing must reproduce: MNIST's pixel mean and std.

Ground floor: the MNIST handler, the upload steps (digits) and the training script share them.
"""

MNIST_MEAN = (0.1307,)  # what TorchServe's MNIST example handler normalizes with
MNIST_STD = (0.3081,)
