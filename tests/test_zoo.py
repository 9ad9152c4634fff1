"""The teacher zoo: shipped files match their cards, the digits teacher reproduces its card, and a
run without a cached teacher takes the zoo's with a one-line notice."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from setuptools.config.pyprojecttoml import read_configuration

import ssdkd_env.zoo as zoo
from ssdkd_env.checkpoint import load_model
from ssdkd_env.env.registration import task_env_ids
from ssdkd_env.errors import UserError
from ssdkd_env.supervised import TeacherRun, train_teacher
from ssdkd_env.tasks import get_task
from ssdkd_env.teachers import ZOO_NOTICE_SHOWN, obtain_teacher
from ssdkd_env.zoo import SIZE_LIMIT_BYTES, ZOO_DIR, add_to_zoo, find_zoo_teacher, score_on_test_split, zoo_cards

REQUIRED = {
    ("digits", "cnn"),
    ("mnist", "lenet5"),
    ("cifar10-cpu", "wrn16_1"),
    ("cifar10-16", "cnn"),
    ("shapes", "unet_s"),
    ("camvid-cpu", "unet_s"),
}


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A teacher cache of this test's own, empty (other tests may fill the session's), and no notice shown yet."""
    monkeypatch.setenv("SSDKD_ENV_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ZOO_NOTICE_SHOWN, raising=False)
    return tmp_path / "cache"


def test_every_zoo_file_loads_and_matches_its_card() -> None:
    cards = zoo_cards()
    assert cards, "the zoo is empty"
    for card in cards:
        assert zoo.sha256_of(card.path) == card.sha256
        assert card.path.stat().st_size == card.size_bytes
        model, model_card = load_model(card.path, task=card.task, arch=card.arch, role="teacher")
        assert model_card.test_acc == pytest.approx(card.test_score)
        assert card.arch == get_task(card.task).teacher_arch  # the teacher a run of the task looks for
        assert "train/train_teacher.py" in card.command and f"--task {card.task}" in card.command
    assert {(c.task, c.arch) for c in cards} <= REQUIRED


def test_the_zoo_holds_every_required_teacher_within_the_size_limit() -> None:
    assert {(c.task, c.arch) for c in zoo_cards()} == REQUIRED
    assert sum(c.size_bytes for c in zoo_cards()) <= SIZE_LIMIT_BYTES
    cifar = find_zoo_teacher("cifar10-cpu", "wrn16_1")
    assert cifar is not None and cifar.test_score >= 0.85  # the documented recipe's bar


def test_the_package_data_carries_every_zoo_file() -> None:
    pyproject = read_configuration(Path(__file__).parents[1] / "pyproject.toml")
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ssdkd_env.zoo"]
    shipped = {p.name for pattern in patterns for p in ZOO_DIR.glob(pattern)}
    for card in zoo_cards():
        assert {card.file, card.card_path.name} <= shipped


def test_the_digits_teacher_scores_its_card_on_the_test_split() -> None:
    card = find_zoo_teacher("digits", "cnn")
    assert card is not None
    assert score_on_test_split(card, None) == pytest.approx(card.test_score, abs=1e-6)


@pytest.mark.slow
def test_the_digits_card_command_trains_a_teacher_of_the_same_accuracy(tmp_path: Path) -> None:
    """The card's recipe (the task's, its epochs and seed), run again here: kernels may round
    differently on another CPU, so within one point (3.6 of the 360 test images)."""
    card = find_zoo_teacher("digits", "cnn")
    assert card is not None
    summary = train_teacher(
        TeacherRun(get_task("digits"), "cnn", tmp_path, epochs=card.epochs, seed=card.seed, progress=False)
    )
    assert summary["test_acc"] == pytest.approx(card.test_score, abs=0.01)


def test_a_run_without_a_cached_teacher_takes_the_zoos_with_one_notice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    teacher, card = obtain_teacher(get_task("digits"), None, None, False, torch.device("cpu"), train=False)
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and notice[0].startswith("notice:") and "zoo's digits/cnn" in notice[0]
    obtain_teacher(get_task("digits"), None, None, False, torch.device("cpu"), train=False)
    assert capsys.readouterr().err == ""  # once per process tree: workers started later stay quiet
    shipped = find_zoo_teacher("digits", "cnn")
    assert shipped is not None and card.test_acc == pytest.approx(shipped.test_score)
    reference, _ = load_model(shipped.path)
    pairs = zip(teacher.state_dict().values(), reference.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_cached_teacher_wins_over_the_zoos(empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cached = empty_cache / "teachers" / "digits" / "cnn" / "teacher.pt"
    cached.parent.mkdir(parents=True)
    shipped = find_zoo_teacher("digits", "cnn")
    assert shipped is not None
    payload = torch.load(shipped.path, weights_only=True)
    payload["card"]["test_acc"] = 0.5  # a different teacher, told apart by its card
    torch.save(payload, cached)
    _, card = obtain_teacher(get_task("digits"), None, None, False, torch.device("cpu"), train=False)
    assert card.test_acc == 0.5
    assert "notice" not in capsys.readouterr().err


@pytest.fixture
def scratch_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the zoo in a temporary folder, in place of the installed one."""
    copy = tmp_path / "zoo"
    shutil.copytree(ZOO_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(zoo, "ZOO_DIR", copy)
    return copy


def test_a_damaged_zoo_file_is_refused_in_one_line(scratch_zoo: Path) -> None:
    card = find_zoo_teacher("digits", "cnn")
    assert card is not None and card.path.parent == scratch_zoo
    data = bytearray(card.path.read_bytes())
    data[-100] ^= 0xFF
    card.path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its card's sha256"):
        obtain_teacher(get_task("digits"), None, None, False, torch.device("cpu"), train=False)


def test_add_writes_a_card_from_a_finished_run(scratch_zoo: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_teacher(TeacherRun(get_task("digits"), "cnn", run, epochs=1, progress=False))
    card = add_to_zoo(run, data="digits", command="python train/train_teacher.py --task digits --epochs 1")
    saved = json.loads((scratch_zoo / "digits-cnn.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert saved == asdict(card)
    assert card.test_score == summary["test_acc"] and card.epochs == 1 and card.torch == torch.__version__
    assert card.sha256 == zoo.sha256_of(run / "teacher.pt")
    with pytest.raises(UserError, match="no finished teacher run"):
        add_to_zoo(tmp_path / "empty", data="digits", command="x")


def test_every_registered_id_makes_its_environment_from_the_zoo() -> None:
    ids = task_env_ids()
    assert ids["SSDKD/digits-budget-v0"] == ("digits", "budget")
    assert {task for task, _ in ids.values()} == {c.task for c in zoo_cards()}
    for env_id in ids:
        env = gym.make(env_id, device="cpu")
        try:
            task, _ = ids[env_id]
            assert env.unwrapped.task.name == task
            assert env.observation_space.shape is not None and env.action_space.shape == (7,)
        finally:
            env.close()


def test_a_registered_id_steps_with_overrides() -> None:
    env = gym.make("SSDKD/digits-budget-v0", device="cpu", rounds=2, kd_steps=2, probe_size=32)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    _, reward, terminated, _, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and not terminated and info["round"] == 1
    env.close()
