"""Checkpoints round-trip and refuse what does not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssdkd_env.checkpoint import card_for, load_model, read_checkpoint, save_model
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model
from ssdkd_env.tasks import get_task


def _saved_teacher(path: Path, task_name: str = "digits", arch: str = "cnn_half") -> torch.nn.Module:
    task = get_task(task_name)
    torch.manual_seed(0)
    model = build_model(arch, task.num_classes, task.input_shape[0])
    save_model(path, model, card_for(task, arch, "teacher", 0.93))
    return model.eval()


def test_round_trip_keeps_weights_and_card(tmp_path: Path) -> None:
    model = _saved_teacher(tmp_path / "t.pt")
    loaded, card = load_model(tmp_path / "t.pt", task="digits", arch="cnn_half", role="teacher")
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(model(x), loaded(x))
    assert card.task == "digits" and card.arch == "cnn_half" and card.test_acc == pytest.approx(0.93)
    assert card.input_shape == (1, 8, 8) and card.num_classes == 10 and card.mean == get_task("digits").mean


def test_mismatched_task_is_rejected(tmp_path: Path) -> None:
    _saved_teacher(tmp_path / "t.pt")
    with pytest.raises(UserError, match="for task 'digits', not 'mnist'"):
        load_model(tmp_path / "t.pt", task="mnist")


def test_mismatched_arch_and_role_are_rejected(tmp_path: Path) -> None:
    _saved_teacher(tmp_path / "t.pt")
    with pytest.raises(UserError, match="architecture 'cnn_half', not 'cnn'"):
        load_model(tmp_path / "t.pt", arch="cnn")
    with pytest.raises(UserError, match="holds a teacher, not a student"):
        load_model(tmp_path / "t.pt", role="student")


@pytest.mark.parametrize("content", [b"", b"garbage bytes", b"PK\x03\x04broken zip"])
def test_corrupt_file_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_checkpoint(path)
    assert "not a readable ssdkd_env checkpoint" in str(err.value) and "\n" not in str(err.value)


def test_foreign_torch_file_is_rejected(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a readable ssdkd_env checkpoint"):
        read_checkpoint(tmp_path / "other.pt")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")


def test_weights_that_do_not_fit_the_card_are_rejected(tmp_path: Path) -> None:
    task = get_task("digits")
    wrong = build_model("cnn", task.num_classes, 1)  # weights of cnn under a cnn_half card
    save_model(tmp_path / "t.pt", wrong, card_for(task, "cnn_half", "teacher", 0.9))
    with pytest.raises(UserError, match="do not fit architecture 'cnn_half'"):
        load_model(tmp_path / "t.pt")
