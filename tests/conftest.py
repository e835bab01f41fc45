"""Shared fixtures: small datasets written in torchvision's on-disk formats, and tiny models."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """Write an IDX file (the MNIST format): magic with the dtype code and rank, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def class_images(n: int, size: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is written into their brightness pattern, so a tiny model can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, channels, size, size), dtype=np.int64)
    for c in range(10):
        rows = slice(2 * (c % 5) + 2, 2 * (c % 5) + 6)
        cols = slice(4, 12) if c < 5 else slice(14, 22)
        images[labels == c, :, rows, cols] += 180
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_mnist_like(raw: Path, n_train: int = 256, n_test: int = 128, gz: bool = False) -> None:
    suffix = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = class_images(n, 28, 1, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images[:, 0], gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    """A data root holding a small Fashion-MNIST in torchvision's raw layout."""
    write_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw")
    return tmp_path / "data"


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding a small CIFAR-10 in torchvision's python-pickle layout.

    torchvision checks each file's md5 against the real archive's; the fixture points those
    checksums at its own files, so the rest of torchvision's loading code runs unchanged.
    """
    from torchvision import datasets

    base = tmp_path / "data" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    train_list, test_list = [], []
    for name, n, seed in [(f"data_batch_{i}", 20, i) for i in range(1, 6)] + [("test_batch", 30, 9)]:
        images, labels = class_images(n, 32, 3, seed)
        with open(base / name, "wb") as f:
            pickle.dump({"data": images.reshape(n, -1), "labels": labels.tolist()}, f)
        (test_list if name == "test_batch" else train_list).append([name, md5(base / name)])
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(datasets.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                                   "md5": md5(base / "batches.meta")})
    return tmp_path / "data"


@pytest.fixture
def svhn_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding a small SVHN in its cropped-digits .mat format (labels 1..10, 10 for 0)."""
    import scipy.io
    from torchvision import datasets

    root = tmp_path / "data"
    root.mkdir()
    split_list = dict(datasets.SVHN.split_list)
    for split, n, seed in (("train", 40, 0), ("test", 30, 1)):
        images, labels = class_images(n, 32, 3, seed)
        svhn_labels = np.where(labels == 0, 10, labels).reshape(-1, 1)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": svhn_labels})
        split_list[split] = [split_list[split][0], f"{split}_32x32.mat", md5(root / f"{split}_32x32.mat")]
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)
    return root


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
