"""Net: the digit classifier of PyTorch's MNIST example, so that example's mnist_cnn.pt drops in.
TorchServe imports this file from the model archive, builds its one class, then loads weights."""

import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    """Two convolutions, max-pooling, dropout and two linear layers; returns log-probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of normalized 1x28x28 digits to log-probabilities over the 10 classes."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
