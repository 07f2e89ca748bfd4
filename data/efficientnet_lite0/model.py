"""EfficientNet-Lite0 (ImageNet, 1000 classes) as a plain PyTorch module.

The model definition of a TorchServe model folder (torch-model-archiver --model-file model.py).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

# The standard EfficientNet-B0 stage table; Lite0 keeps it (width/depth multipliers are 1.0).
# (repeats, kernel, stride of the first block, expand ratio, output channels)
STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]

# TensorFlow's batch-norm epsilon; PyTorch's default 1e-5 would shift every activation a little.
# Momentum only matters for training (TF's decay 0.99 is PyTorch's momentum 0.01).
BN = dict(eps=1e-3, momentum=0.01)


def conv_bn(c_in, c_out, kernel, stride=1, groups=1):
    """A bias-free convolution and its batch norm; padding is applied in forward (see same_pad)."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(c_out, **BN)


def same_pad(x, conv):
    """Pad x the way TensorFlow's padding="SAME" does before applying conv.

    The weights were trained in TensorFlow, which pads so that out = ceil(in / stride) and puts
    any odd pixel of padding on the bottom/right. For a stride-2 conv on an even input that is
    asymmetric (e.g. 0 top, 1 bottom for a 3x3), so PyTorch's symmetric padding would shift the
    sampling grid by one pixel and degrade the pretrained features. Computing it from the actual
    input size here keeps any input resolution working.
    """
    pads = []
    for size, k, s in zip(x.shape[-2:], conv.kernel_size, conv.stride, strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return F.pad(x, (left, right, top, bottom))


class EfficientNetLite0(nn.Module):
    """EfficientNet-B0 made mobile-friendly: no squeeze-excitation, ReLU6 instead of swish.

    Attribute names mirror the pretrained state_dict keys (_conv_stem, _blocks.N._expand_conv, ...),
    so torch.load() output loads with strict=True. Each block is an nn.ModuleDict rather than its
    own class because TorchServe expects exactly one class defined in this file.
    """

    def __init__(self, num_classes=1000, dropout=0.2):
        super().__init__()
        self._conv_stem, self._bn0 = conv_bn(3, 32, 3, stride=2)

        blocks, c_in = [], 32
        for repeats, kernel, stride, expand, c_out in STAGES:
            for i in range(repeats):
                first = i == 0
                blocks.append(self._make_block(c_in, c_out, kernel, stride if first else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)

        self._conv_head, self._bn1 = conv_bn(c_in, 1280, 1)
        self._dropout = nn.Dropout(dropout)  # identity in eval mode
        self._fc = nn.Linear(1280, num_classes)

    @staticmethod
    def _make_block(c_in, c_out, kernel, stride, expand):
        """Inverted residual (MBConv): 1x1 expand -> depthwise kxk -> 1x1 linear projection."""
        hidden = c_in * expand
        layers = {}
        if expand != 1:  # block 0 has nothing to expand, and no weights for it
            layers["_expand_conv"], layers["_bn0"] = conv_bn(c_in, hidden, 1)
        layers["_depthwise_conv"], layers["_bn1"] = conv_bn(
            hidden, hidden, kernel, stride, groups=hidden
        )
        layers["_project_conv"], layers["_bn2"] = conv_bn(hidden, c_out, 1)
        return nn.ModuleDict(layers)

    @staticmethod
    def _run_block(block, x):
        out = x
        if "_expand_conv" in block:
            out = F.relu6(block["_bn0"](block["_expand_conv"](out)))
        dw = block["_depthwise_conv"]
        out = F.relu6(block["_bn1"](dw(same_pad(out, dw))))
        out = block["_bn2"](block["_project_conv"](out))  # no activation: the projection is linear
        # Skip connection only where shapes match (training would add drop-connect here).
        if dw.stride == (1, 1) and out.shape[1] == x.shape[1]:
            out = out + x
        return out

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(same_pad(x, self._conv_stem))))
        for block in self._blocks:
            x = self._run_block(block, x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))
