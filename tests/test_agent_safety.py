"""Agent files load as data only (a planted pickle never runs), --hyper values are checked by name
and type, and a SIGKILLed run_agent.py on one environment resumes to the same results."""

from __future__ import annotations

import base64
import json
import pickle
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import KILL_DRIVER, TINY, random_teacher, saved_random_teacher
from scripts import ROOT, run_script
from stable_baselines3.common import save_util
from test_run_agent import tiny_env_file, train_reinforce_args

from agents import load_agent, make_agent, preferred_action_mode
from agents.registry import check_hyper
from ssdkd_env.env import make_env
from ssdkd_env.env.evaluation import make_env_config
from ssdkd_env.env.vector import make_vec_env
from ssdkd_env.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: fastest on one thread (conftest.py)

FIXTURES = ROOT / "tests" / "fixtures" / "release-2026-12-07"
TINY_HYPER: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 4, "batch_size": 4, "n_epochs": 1},
    "a2c": {"n_steps": 4},
    "sac": {"learning_starts": 2, "batch_size": 4, "buffer_size": 64},
}


class Plant:
    """Unpickling this creates the file ``marker``: a stand-in for code a hostile file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def planted(marker: Path) -> bytes:
    """The pickle of a :class:`Plant`, proven live: loading it does create ``marker``."""
    payload = pickle.dumps(Plant(marker))
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()
    return payload


def one_line_error(excinfo: pytest.ExceptionInfo[UserError], *needles: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    return random_teacher()


def teacher_file(tmp_path: Path) -> Path:
    """The module's teacher (:func:`random_teacher`), saved: vector environments load theirs from a file."""
    return saved_random_teacher(tmp_path / "teacher.pt")


def tiny_env(teacher: torch.nn.Module, name: str = "ppo") -> Any:
    return make_env(teacher_model=teacher, task="digits", device="cpu", action_mode=preferred_action_mode(name), **TINY)


def saved(name: str, teacher: torch.nn.Module, folder: Path, steps: int = 4) -> Path:
    agent = make_agent(name, tiny_env(teacher, name), **TINY_HYPER.get(name, {}))
    agent.learn(steps)
    agent.save(folder)
    return folder


def rezip(file: Path, replace: dict[str, bytes]) -> None:
    """Rewrite the zip ``file`` with the members of ``replace`` in place of its own."""
    with zipfile.ZipFile(file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in {**members, **replace}.items():
            archive.writestr(name, data)


def plant_in_model_data(file: Path, key: str, payload: bytes) -> None:
    with zipfile.ZipFile(file) as archive:
        data = json.loads(archive.read("data"))
    data[key] = {":type:": "<class 'Plant'>", ":serialized:": base64.b64encode(payload).decode()}
    rezip(file, {"data": json.dumps(data).encode()})


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """SB3's unpicklers fail the test if called at all."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(save_util.cloudpickle, "loads", refuse)
    monkeypatch.setattr(save_util.pickle, "load", refuse)


@pytest.mark.parametrize("key", ["policy_class", "lr_schedule", "_last_obs", "ep_info_buffer"])
def test_a_pickle_planted_in_model_zip_is_never_loaded(key: str, teacher: torch.nn.Module, tmp_path: Path) -> None:
    folder = saved("ppo", teacher, tmp_path / "agent")
    marker = tmp_path / "hijacked"
    plant_in_model_data(folder / "model.zip", key, planted(marker))
    agent = load_agent(folder, tiny_env(teacher))  # the key's value comes from a freshly built model
    agent.learn(6)
    assert not marker.exists() and agent.num_steps == 6


def test_a_pickled_value_the_model_has_no_attribute_for_is_refused(teacher: torch.nn.Module, tmp_path: Path) -> None:
    folder = saved("ppo", teacher, tmp_path / "agent")
    marker = tmp_path / "hijacked"
    plant_in_model_data(folder / "model.zip", "payload", planted(marker))
    with pytest.raises(UserError) as excinfo:
        load_agent(folder, tiny_env(teacher))
    one_line_error(excinfo, str(folder / "model.zip"), "'payload'", "refused")
    assert not marker.exists()


def test_a_pickle_planted_as_tensors_in_model_zip_is_refused(teacher: torch.nn.Module, tmp_path: Path) -> None:
    folder = saved("ppo", teacher, tmp_path / "agent")
    marker = tmp_path / "hijacked"
    planted(marker)
    torch.save(Plant(marker), tmp_path / "policy.pth")
    rezip(folder / "model.zip", {"policy.pth": (tmp_path / "policy.pth").read_bytes()})
    with pytest.raises(UserError) as excinfo:
        load_agent(folder, tiny_env(teacher))
    one_line_error(excinfo, str(folder / "model.zip"), "refused")
    assert not marker.exists()


def test_replay_buffers_are_saved_as_data_and_a_planted_pickle_is_not_read(
    teacher: torch.nn.Module, tmp_path: Path, no_unpickling: None
) -> None:
    env = tiny_env(teacher, "sac")
    agent = make_agent("sac", env, **TINY_HYPER["sac"])
    agent.learn(5)
    agent.save(tmp_path / "agent")
    assert sorted(p.name for p in (tmp_path / "agent").iterdir()) == [
        "agent.json",
        "model.zip",
        "sb3_state.json",
        "sb3_state.npz",
    ]
    loaded = load_agent(tmp_path / "agent", env)
    assert loaded.model.replay_buffer.pos == agent.model.replay_buffer.pos == 5
    for name in ("observations", "next_observations", "actions", "rewards", "dones"):
        np.testing.assert_array_equal(
            getattr(loaded.model.replay_buffer, name), getattr(agent.model.replay_buffer, name)
        )

    # SB3's pickle file, planted: not read (a warning says so); the saved replay buffer is data only
    marker = tmp_path / "hijacked"
    payload = planted(marker)
    (tmp_path / "agent" / "replay_buffer.pkl").write_bytes(payload)
    load_agent(tmp_path / "agent", env)
    for name in ("sb3_state.npz", "sb3_state.json"):
        (tmp_path / "agent" / name).unlink()
    with pytest.warns(UserWarning, match="replay_buffer.pkl is not read"):
        assert load_agent(tmp_path / "agent", env).model.replay_buffer.pos == 0
    # the pickle as the run state's arrays, and inside an object array of a real npz
    (tmp_path / "agent" / "sb3_state.npz").write_bytes(payload)
    (tmp_path / "agent" / "sb3_state.json").write_text("{}")
    with pytest.raises(UserError) as excinfo:
        load_agent(tmp_path / "agent", env)
    one_line_error(excinfo, "sb3_state", "not readable")
    np.savez(tmp_path / "agent" / "sb3_state.npz", last_obs=np.array([Plant(marker)], dtype=object))
    with pytest.raises(UserError) as excinfo:
        load_agent(tmp_path / "agent", env)
    one_line_error(excinfo, "sb3_state", "not readable")
    assert not marker.exists()


def test_a_pickle_planted_as_a_builtin_agents_state_is_refused(teacher: torch.nn.Module, tmp_path: Path) -> None:
    folder = saved("reinforce", teacher, tmp_path / "agent", steps=3)
    marker = tmp_path / "hijacked"
    planted(marker)
    torch.save({"policy": Plant(marker)}, folder / "state.pt")
    with pytest.raises(UserError) as excinfo:
        load_agent(folder, tiny_env(teacher, "reinforce"))
    one_line_error(excinfo, str(folder / "state.pt"), "is refused", "may not run code")
    assert not marker.exists()
    torch.save({"policy": {}}, folder / "state.pt")  # data, but not this agent's
    with pytest.raises(UserError) as excinfo:
        load_agent(folder, tiny_env(teacher, "reinforce"))
    one_line_error(excinfo, str(folder / "state.pt"), "does not fit agent 'reinforce'")


def test_a_damaged_model_zip_is_one_line_naming_the_file(teacher: torch.nn.Module, tmp_path: Path) -> None:
    folder = saved("ppo", teacher, tmp_path / "agent")
    file = folder / "model.zip"
    whole = file.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole[:-30], b"not a zip", b""):
        file.write_bytes(damaged)
        with pytest.raises(UserError) as excinfo:
            load_agent(folder, tiny_env(teacher))
        one_line_error(excinfo, str(file), "not a readable SB3 model")
    file.write_bytes(whole)
    rezip(file, {"data": b"{not json"})
    with pytest.raises(UserError) as excinfo:
        load_agent(folder, tiny_env(teacher))
    one_line_error(excinfo, str(file), "not a readable SB3 model")


@pytest.mark.parametrize("name", ["ppo", "reinforce", "sac"])
def test_agents_saved_by_the_release_of_2026_12_07_still_load(
    name: str, teacher: torch.nn.Module, no_unpickling: None, recwarn: pytest.WarningsRecorder
) -> None:
    env = tiny_env(teacher, name)
    agent = load_agent(FIXTURES / f"agent_{name}", env)
    assert agent.num_steps == 4 and agent.num_episodes == 2
    obs, _ = env.reset(seed=1)
    assert env.action_space.contains(agent.act(obs))
    agent.learn(6)  # and learning goes on (with a fresh episode: these files hold no run state)
    assert agent.num_steps == 6
    assert any("replay_buffer.pkl is not read" in str(w.message) for w in recwarn.list) == (name == "sac")


@pytest.mark.parametrize(
    ("name", "hyper", "needles"),
    [
        ("ppo", {"learning_rate": "banana"}, ['learning_rate="banana"', "a number > 0", "learning_rate=0.0003"]),
        ("ppo", {"n_steps": -4}, ["n_steps=-4", "an integer >= 1", "n_steps=32"]),
        ("ppo", {"n_steps": 2.5}, ["n_steps=2.5", "an integer"]),
        ("ppo", {"gamma": "abc"}, ['gamma="abc"', "a number in [0, 1]"]),
        ("ppo", {"gamma": 1.5}, ["gamma=1.5", "in [0, 1]"]),
        ("ppo", {"batch_size": True}, ["batch_size=true", "an integer >= 1"]),
        ("ppo", {"n_epochs": 0}, ["n_epochs=0", ">= 1"]),
        ("ppo", {"start_at_rule": 1}, ["start_at_rule=1", "true or false"]),
        ("ppo", {"n_stepz": 8}, ["no hyper-parameter 'n_stepz'", "did you mean 'n_steps'"]),
        ("ppo", {"rollout_buffer_class": "RolloutBuffer"}, ["rollout_buffer_class", "must be null"]),
        ("dqn", {"buffer_size": "big"}, ['buffer_size="big"', "an integer >= 1"]),
        ("dqn", {"exploration_fraction": -0.1}, ["exploration_fraction=-0.1", "in [0, 1]"]),
        ("sac", {"ent_coef": -1}, ["ent_coef=-1", "a string or a number >= 0"]),
        ("reinforce", {"lr": float("nan")}, ["lr=NaN", "a number > 0"]),
        ("reinforce", {"hidden": "64"}, ['hidden="64"', "an integer >= 1", "hidden=64"]),
        ("reinforce", {"n_steps": 4}, ["no hyper-parameter 'n_steps'", "valid: ent_coef, gamma, hidden"]),
        ("search", {"episodes_per_candidate": 0}, ["episodes_per_candidate=0", ">= 1"]),
        ("ucb", {"exploration": -1}, ["exploration=-1", ">= 0"]),
    ],
)
def test_check_hyper_refuses_wrong_names_types_and_ranges_in_one_line(
    name: str, hyper: dict[str, Any], needles: list[str]
) -> None:
    with pytest.raises(UserError) as excinfo:
        check_hyper(name, hyper)
    one_line_error(excinfo, f"'{name}'", *needles)


def test_check_hyper_passes_what_the_agents_take() -> None:
    check_hyper("ppo", {"learning_rate": 1e-3, "n_steps": 8, "gamma": 1, "start_at_rule": True, "initial_std": 0.3})
    check_hyper("ppo", {"policy_kwargs": {"net_arch": [8]}, "target_kl": None, "clip_range_vf": None})
    check_hyper("sac", {"ent_coef": "auto", "train_freq": [1, "episode"], "buffer_size": 8})
    check_hyper("dqn", {"exploration_fraction": 0.3, "learning_starts": 0})
    check_hyper("reinforce", {"lr": 1, "hidden": 8, "init_log_std": -2.0})
    check_hyper("fixed", {"action": [0.0] * 7})  # checked by the agent itself
    check_hyper("ssdkd", {})


@pytest.mark.parametrize(
    ("name", "hyper", "n_envs"),
    [
        ("ppo", TINY_HYPER["ppo"], 1),
        ("ppo", {"n_steps": 3, "batch_size": 3, "n_epochs": 2}, 1),
        ("a2c", TINY_HYPER["a2c"], 1),
        ("ppo", TINY_HYPER["ppo"], 2),
    ],
)
def test_an_on_policy_agent_loaded_from_an_episode_end_goes_on_exactly(
    name: str, hyper: dict[str, Any], n_envs: int, teacher: torch.nn.Module, tmp_path: Path
) -> None:
    """Saved at the end of episode 2 of every environment (mid-rollout with n_steps 4, at a rollout's
    end with 3), loaded on fresh environments in a fresh process state: the same steps and networks
    as without the stop. Two environments: a local vector, whose episodes end together."""
    env_file = tiny_env_file(tmp_path / "env.json", rounds=TINY["rounds"])
    config = make_env_config("digits", "continuous", config_file=env_file, teacher=str(teacher_file(tmp_path)))

    def fresh_env() -> Any:
        return tiny_env(teacher, name) if n_envs == 1 else make_vec_env(config, n_envs, "local", seed=0)

    def record(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["step"], r["reward"], r.get("episode_return"), tuple(sorted(r.get("losses", {}).items())))

    total, saved_at = 14 * n_envs, 6 * n_envs  # the end of every environment's 2nd episode
    whole = make_agent(name, fresh_env(), **hyper)
    expected: list[tuple[Any, ...]] = []
    whole.learn(total, lambda r: expected.append(record(r)))

    stopped = make_agent(name, fresh_env(), **hyper)
    before: list[tuple[Any, ...]] = []

    def checkpoint_then_stop(r: dict[str, Any]) -> bool:
        before.append(record(r))
        if r["done"]:
            stopped.save(tmp_path / "agent")
        return r["step"] < saved_at + n_envs  # "killed" a step into episode 3

    stopped.learn(total, checkpoint_then_stop)
    torch.manual_seed(123)  # a new process's random states
    np.random.seed(123)
    resumed = load_agent(tmp_path / "agent", fresh_env())
    after: list[tuple[Any, ...]] = []
    resumed.learn(total, lambda r: after.append(record(r)))
    assert before[:saved_at] + after == expected
    for mine, theirs in zip(resumed.model.policy.parameters(), whole.model.policy.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    env = tiny_env(teacher, name)  # and the policy loads onto one environment to be evaluated
    obs, _ = env.reset(seed=5)
    acting = load_agent(tmp_path / "agent", env).act(obs)
    np.testing.assert_array_equal(acting, load_agent(tmp_path / "agent", fresh_env()).act(obs))


def test_learning_in_pieces_equals_learning_at_once_for_ppo(teacher: torch.nn.Module) -> None:
    """A rollout cut short by total_steps is completed by the next learn, then trained on."""
    whole = make_agent("ppo", tiny_env(teacher), **TINY_HYPER["ppo"])
    whole.learn(10)
    pieces = make_agent("ppo", tiny_env(teacher), **TINY_HYPER["ppo"])
    for total in (3, 5, 10):
        pieces.learn(total)
    assert pieces.model.logger.name_to_value["train/n_updates"] == 2  # rollouts of steps 1-4 and 5-8
    for mine, theirs in zip(pieces.model.policy.parameters(), whole.model.policy.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def killed_then_resumed_matches_one_run(tmp_path: Path, args: list[str], kill_round: int) -> dict[str, Any]:
    """Run ``args`` (all but --out) whole, and again SIGKILLed inside engine round ``kill_round`` then
    resumed: the two summary.json files (besides wall time) must be equal; returns the first."""
    whole = run_script("run_agent", *args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    script = str(ROOT / "train" / "run_agent.py")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DRIVER, str(kill_round), script, *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "summary.json").exists()
    resumed = run_script("run_agent", *args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in ("whole", "killed")]
    for summary in summaries:
        summary.pop("wall_time_s")
    assert summaries[0] == summaries[1]
    return summaries[0]


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["reinforce", "ppo"])
def test_sigkill_then_resume_on_one_environment_gives_the_same_summary(agent: str, tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    args = train_reinforce_args(teacher, tiny_env_file(tmp_path / "env.json", rounds=2), tmp_path, 8, 1)
    del args[args.index("--out") : args.index("--out") + 2]
    args[args.index("--agent") + 1] = agent
    args += ["--n-envs", "1", "--baselines", "ssdkd"]
    if agent == "ppo":  # rollouts of 3 steps against episodes of 2: the kill and the checkpoint are mid-rollout
        args += ["--hyper", "n_steps=3", "--hyper", "batch_size=3", "--hyper", "n_epochs=1"]
    # killed inside the 5th round: episodes 1 and 2 (rounds 1-4) were checkpointed, the 3rd was under way
    summary = killed_then_resumed_matches_one_run(tmp_path, args, 5)
    assert summary["total_steps"] == 8 and len(summary["learning_curve"]) == 4
