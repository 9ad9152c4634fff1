"""In-memory labelled image sets and the loaders that fill them from real data.

Every loader returns a :class:`LabeledImages` with ``uint8`` images of shape [N, C, H, W]
already at the task's input size, so training and evaluation batch straight from tensors.
Labels are one class per image ``[N]`` (classification) or one per pixel ``[N, H, W]``
(segmentation, with :data:`IGNORE_INDEX` where a pixel has no label).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ssdkd_env.errors import UserError

IGNORE_INDEX = 255
"""The label of a pixel without a class (CamVid's "unlabelled"): ignored by losses and metrics."""


@dataclass
class LabeledImages:
    """Images as ``uint8`` [N, C, H, W] and integer labels [N] (one class per image) or
    [N, H, W] (one class per pixel, :data:`IGNORE_INDEX` for none)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError("images must be a uint8 tensor of shape [N, C, H, W]")
        n, _, h, w = self.images.shape
        if self.labels.shape not in ((n,), (n, h, w)):
            raise ValueError(f"labels must have shape [N] or [N, H, W] = {[n, h, w]}, got {list(self.labels.shape)}")
        self.labels = self.labels.long()

    @property
    def dense(self) -> bool:
        """Whether the labels are per pixel."""
        return self.labels.ndim == 3

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize [N, C, H, W] uint8 images to size x size (bilinear), keeping uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def load_digits_split(train: bool) -> LabeledImages:
    """scikit-learn's bundled 8x8 digits with a fixed, seeded, stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    idx_train, idx_test = train_test_split(
        np.arange(len(bunch.target)),
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=bunch.target,
    )
    idx = idx_train if train else idx_test
    return LabeledImages(torch.from_numpy(images[idx]), torch.from_numpy(bunch.target[idx]))


# What each torchvision dataset expects on disk, relative to --data-root (for error messages).
EXPECTED_FILES: dict[str, str] = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "fashion-mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "svhn": "train_32x32.mat and test_32x32.mat",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
    "cifar100": "cifar-100-python/{train,test,meta}",
}


def missing_data_error(task: str, root: str | Path | None) -> UserError:
    """The one-line error for a torchvision task whose files are not under ``root``."""
    where = Path(root).resolve() if root is not None else "(no --data-root given)"
    return UserError(
        f"no {task} data found in {where}: expected {EXPECTED_FILES[task]}; "
        f"pass --data-root to the folder that holds them, or add --download to fetch them"
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches' dicts, lists, strings and numpy arrays, and nothing else: a
    dataset folder from elsewhere cannot run code (any other class or function is refused)."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused {module}.{name}: a CIFAR batch holds arrays, lists and dicts only")
        return super().find_class(module, name)


def _read_cifar(folder: Path, train: bool, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the pickled CIFAR batches (python version) from ``folder``."""
    if folder.name == "cifar-10-batches-py":
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    else:
        names = ["train" if train else "test"]
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="latin1").load()  # its errors: "could not read" in load()
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _read_svhn(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an SVHN ``*_32x32.mat`` file (X: H x W x C x N, y: N x 1 with 10 for digit 0)."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))).astype(np.uint8)
    labels = mat["y"].astype(np.int64).reshape(-1) % 10
    return torch.from_numpy(images), torch.from_numpy(labels)


def _download(task: str, root: Path, train: bool) -> None:
    """Fetch a dataset into ``root`` through torchvision (only with --download)."""
    from torchvision import datasets

    classes = {
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }
    try:
        if task == "svhn":
            datasets.SVHN(root=str(root), split="train" if train else "test", download=True)
        else:
            classes[task](root=str(root), train=train, download=True)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"could not download {task} into {root}: {exc}") from None


def load_torchvision_split(task: str, root: str | Path | None, train: bool, download: bool, size: int) -> LabeledImages:
    """Read a torchvision-format dataset from ``root`` into memory at ``size`` x ``size``.

    MNIST-like sets are read by torchvision; CIFAR batches and SVHN ``.mat`` files are read
    directly (torchvision's readers insist on the official checksums).
    """
    from torchvision import datasets

    if root is None:
        if not download:
            raise missing_data_error(task, None)
        root = Path.home() / ".cache" / "ssdkd_env" / "data"
    root = Path(root)
    if download:
        _download(task, root, train)
    try:
        if task in ("mnist", "fashion-mnist"):
            cls = datasets.MNIST if task == "mnist" else datasets.FashionMNIST
            ds = cls(root=str(root), train=train, download=False)
            images, labels = ds.data[:, None].clone(), ds.targets.clone()
        elif task == "svhn":
            images, labels = _read_svhn(root / f"{'train' if train else 'test'}_32x32.mat")
        elif task == "cifar10":
            images, labels = _read_cifar(root / "cifar-10-batches-py", train, "labels")
        elif task == "cifar100":
            images, labels = _read_cifar(root / "cifar-100-python", train, "fine_labels")
        else:
            raise KeyError(task)
    except (RuntimeError, FileNotFoundError):
        raise missing_data_error(task, root) from None
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise UserError(f"could not read {task} data in {root}: {exc}") from None
    return LabeledImages(_resize_uint8(images, size), labels)
