"""Task registry and real-data loaders, on the bundled digits and on tiny fake files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_data import write_cifar, write_idx, write_svhn

from ssdkd_env.errors import UserError
from ssdkd_env.models import get_model_entry, is_compatible, list_models
from ssdkd_env.tasks import get_task, list_tasks


def test_registry_lists_all_tasks() -> None:
    classification = {"digits", "mnist", "fashion-mnist", "svhn", "cifar10", "cifar10-cpu", "cifar10-16", "cifar100"}
    segmentation = {"shapes", "camvid", "camvid-cpu", "nyuv2", "nyuv2-cpu"}
    assert set(list_tasks()) == classification | segmentation
    assert {name for name in list_tasks() if get_task(name).kind == "segmentation"} == segmentation


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(UserError) as err:
        get_task("imagenet")
    assert "imagenet" in str(err.value) and "cifar10" in str(err.value) and "digits" in str(err.value)


@pytest.mark.parametrize("name", sorted(list_tasks()))
def test_task_declares_consistent_fields(name: str) -> None:
    task = get_task(name)
    assert len(task.mean) == len(task.std) == task.input_shape[0]
    assert task.teacher_arch in list_models() and task.student_arch in list_models()
    assert is_compatible(task.teacher_arch, task.input_shape)
    assert is_compatible(task.student_arch, task.input_shape)
    dense = task.kind == "segmentation"  # the default pair gives the task's kind of output
    assert get_model_entry(task.teacher_arch).dense == dense == get_model_entry(task.student_arch).dense


def test_digits_split_is_fixed_disjoint_and_stratified() -> None:
    task = get_task("digits")
    train, test = task.load(None, train=True), task.load(None, train=False)
    again = task.load(None, train=False)
    assert len(train) + len(test) == 1797 and len(test) == 360
    assert torch.equal(test.images, again.images) and torch.equal(test.labels, again.labels)
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == torch.uint8
    assert torch.bincount(test.labels, minlength=10).min() >= 35
    train_rows = {bytes(r) for r in train.images.reshape(len(train), -1).numpy()}
    test_rows = [bytes(r) for r in test.images.reshape(len(test), -1).numpy()]
    # a handful of digits are exact duplicates in the source data; almost none may cross the split
    assert sum(r in train_rows for r in test_rows) <= 3


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_loader_reads_fake_files(tmp_path: Path, name: str, folder: str) -> None:
    arrays = write_idx(tmp_path, folder, n_train=12, n_test=5)
    task = get_task(name)
    train = task.load(tmp_path, train=True)
    test = task.load(tmp_path, train=False)
    assert train.images.shape == (12, 1, 32, 32) and test.images.shape == (5, 1, 32, 32)
    assert np.array_equal(test.labels.numpy(), arrays["t10k_labels"])
    # resizing 28 -> 32 keeps the images' content: mean brightness within rounding
    assert abs(test.images.float().mean().item() - arrays["t10k_images"].mean()) < 3.0


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar10-cpu", 10), ("cifar100", 100)])
def test_cifar_loader_reads_fake_batches(tmp_path: Path, name: str, classes: int) -> None:
    written = write_cifar(tmp_path, classes, per_batch=6)
    task = get_task(name)
    train, test = task.load(tmp_path, train=True), task.load(tmp_path, train=False)
    assert len(train) == (30 if classes == 10 else 6) and test.images.shape == (6, 3, 32, 32)
    assert np.array_equal(test.images.numpy().reshape(6, -1), written["test_data"])
    assert np.array_equal(test.labels.numpy(), written["test_labels"])


def test_cifar10_16_reads_the_same_batches_at_16x16(tmp_path: Path) -> None:
    written = write_cifar(tmp_path, 10, per_batch=6)
    test = get_task("cifar10-16").load(tmp_path, train=False)
    assert test.images.shape == (6, 3, 16, 16) and test.images.dtype == torch.uint8
    assert np.array_equal(test.labels.numpy(), written["test_labels"])
    full = torch.from_numpy(written["test_data"].reshape(6, 3, 32, 32)).float()
    # bilinear 32 -> 16 without antialiasing: each pixel is the mean of a 2x2 block, rounded
    expected = torch.nn.functional.avg_pool2d(full, 2).round()
    assert (test.images.float() - expected).abs().max() <= 1.0


def test_svhn_loader_reads_fake_mat(tmp_path: Path) -> None:
    written = write_svhn(tmp_path, n=7)
    test = get_task("svhn").load(tmp_path, train=False)
    assert test.images.shape == (7, 3, 32, 32)
    assert np.array_equal(test.images.numpy(), written["test_X"].transpose(3, 2, 0, 1))
    assert np.array_equal(test.labels.numpy(), written["test_y"].reshape(-1) % 10)
    assert test.labels.max() <= 9


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "svhn", "cifar10", "cifar100"])
def test_missing_data_names_folder_files_and_flag(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as err:
        get_task(name).load(tmp_path, train=True)
    message = str(err.value)
    assert str(tmp_path) in message and "--download" in message and "--data-root" in message
    assert "\n" not in message


def test_missing_data_root_is_an_error_not_a_download() -> None:
    with pytest.raises(UserError, match="--data-root"):
        get_task("cifar10").load(None, train=False)


def test_corrupt_cifar_batch_is_a_user_error(tmp_path: Path) -> None:
    write_cifar(tmp_path, 10)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="could not read cifar10"):
        get_task("cifar10").load(tmp_path, train=False)


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """The batches are pickles by format: only numpy arrays, lists and dicts are admitted."""
    marker = tmp_path / "marker"

    class Planted:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return exec, (f"open({str(marker)!r}, 'w').close()",)

    write_cifar(tmp_path, 10)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Planted(), "labels": []}))
    with pytest.raises(UserError, match="refused builtins.exec"):
        get_task("cifar10").load(tmp_path, train=False)
    assert not marker.exists()
