"""Writers of tiny datasets in the real on-disk formats that the loaders read."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(root: Path, folder: str, n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """MNIST-style IDX files (uncompressed) under ``root/folder/raw``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
        arrays[f"{prefix}_images"], arrays[f"{prefix}_labels"] = images, labels
    return arrays


def write_cifar(root: Path, num_classes: int, per_batch: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR python-version pickled batches (10 or 100 classes); returns the test arrays written."""
    rng = np.random.default_rng(seed)

    def batch(n: int, key: str) -> dict:
        return {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            key: rng.integers(0, num_classes, size=n).tolist(),
        }

    if num_classes == 10:
        folder, key = root / "cifar-10-batches-py", "labels"
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    else:
        folder, key = root / "cifar-100-python", "fine_labels"
        folder.mkdir(parents=True, exist_ok=True)
        names = ["train", "test"]
    written = {}
    for name in names:
        b = batch(per_batch, key)
        with open(folder / name, "wb") as fh:
            pickle.dump(b, fh)
        written[name] = b
    return {"test_data": written[names[-1]]["data"], "test_labels": np.array(written[names[-1]][key])}


def write_svhn(root: Path, n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """SVHN ``train_32x32.mat``/``test_32x32.mat`` (X: 32x32x3xN, y: 1..10 with 10 meaning 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
        savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        out[f"{split}_X"], out[f"{split}_y"] = x, y
    return out
