"""DenseNet-121 for a TorchServe model folder: the one model class TorchServe instantiates.

The architecture comes from torchvision; this file fixes its size so the class needs no arguments.
"""

from torchvision.models.densenet import DenseNet


class DenseNet121(DenseNet):
    """DenseNet-121: growth rate 32, blocks of 6/12/24/16 layers, 64 initial features."""

    def __init__(self):
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64)
