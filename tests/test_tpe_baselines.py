"""The TPE baselines (``tpe-constant``, ``tpe-schedule``) and the ``linucb`` contextual bandit, on
small fake environments whose returns are known functions of the actions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from agents import load_agent, make_agent
from agents.builtin.tpe import PROGRESS_INDEX, TPEScheduleAgent, TPESearchAgent
from agents.registry import check_hyper
from ssdkd_env.env.spaces import observation_fields
from ssdkd_env.errors import UserError
from ssdkd_env.replay import MEMORIES

TARGET = np.array([0.5, -0.3, 0.8, -0.6])


class QuadraticEnv(gym.Env):
    """Episodes of ``rounds`` steps; the observation is ``[progress]`` as the distillation env's first
    field; round ``r`` of ``R`` scores ``-|action - targets[floor(phases r / R)]|^2 / R``, so the
    return of a schedule is minus its mean squared distance from the targets. Keeps what it played."""

    def __init__(self, targets: np.ndarray, rounds: int) -> None:
        self.targets = np.atleast_2d(np.asarray(targets, dtype=np.float64))
        self.rounds = rounds
        self.action_space = spaces.Box(-1.0, 1.0, (self.targets.shape[1],), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.played: list[np.ndarray] = []
        self.round = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.round / self.rounds], np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.round = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64)
        self.played.append(action)
        target = self.targets[self.round * len(self.targets) // self.rounds]
        reward = -float(np.sum((action - target) ** 2)) / self.rounds
        self.round += 1
        return self._obs(), reward, self.round == self.rounds, False, {}


class ContextEnv(gym.Env):
    """A contextual bandit as an environment: the observation is a one-hot context drawn at random,
    ``Discrete(3)`` actions, and the reward is 1 (plus noise) when the action matches the context."""

    def __init__(self, rounds: int = 10) -> None:
        self.rounds = rounds
        self.action_space = spaces.Discrete(3)
        self.observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)
        self.round, self.ctx = 0, 0

    def _obs(self) -> np.ndarray:
        self.ctx = int(self.np_random.integers(3))
        return np.eye(3, dtype=np.float32)[self.ctx]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.round = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(int(action) == self.ctx) + 0.1 * float(self.np_random.normal())
        self.round += 1
        return self._obs(), reward, self.round == self.rounds, False, {}


def progress_obs(rounds: int) -> list[np.ndarray]:
    return [np.array([r / rounds], np.float32) for r in range(rounds)]


def test_the_schedule_reads_progress_where_the_distillation_env_puts_it() -> None:
    fields = observation_fields(10, MEMORIES.get("replay"))
    assert fields[PROGRESS_INDEX].name == "progress"


def test_tpe_finds_a_known_optimum_faster_than_random_search() -> None:
    """60 trials in 4 dimensions: each seed's best return is beyond what random search reaches with
    the same 60 trials 9 times in 10 (so five seeds together: about 1e-5 by chance)."""
    trials = 60
    points = np.random.default_rng(0).uniform(-1.0, 1.0, (4000, trials, TARGET.size))
    random_best = (-np.sum((points - TARGET) ** 2, axis=-1)).max(axis=-1)
    for seed in range(5):
        agent = make_agent("tpe-constant", QuadraticEnv(TARGET, rounds=2), seed=seed)
        agent.learn(2 * trials)
        assert isinstance(agent, TPESearchAgent) and len(agent.returns) == trials
        assert max(agent.returns) > np.quantile(random_best, 0.9)
        np.testing.assert_allclose(agent.act(np.zeros(1)), agent.units[int(np.argmax(agent.returns))], rtol=1e-6)


def test_each_trial_is_one_constant_episode_within_the_step_budget() -> None:
    env = QuadraticEnv(TARGET, rounds=3)
    agent = make_agent("tpe-constant", env, seed=0)
    records: list[dict[str, Any]] = []
    agent.learn(10, records.append)  # three trials and the first step of a fourth
    assert agent.num_steps == 10 and len(env.played) == 10
    for start in (0, 3, 6):
        assert all(np.array_equal(env.played[start], a) for a in env.played[start : start + 3])
    assert not np.array_equal(env.played[0], env.played[3])
    assert [r["losses"]["trials"] for r in records if "losses" in r] == [1.0, 2.0, 3.0]
    assert [r["episode_return"] for r in records if r["done"]] == pytest.approx(agent.returns)


def test_the_schedule_plays_three_phases_in_order() -> None:
    targets = np.array([[-0.8, 0.6], [0.0, -0.5], [0.7, 0.7]])
    rounds = 6
    env = QuadraticEnv(targets, rounds)
    agent = make_agent("tpe-schedule", env, seed=0)
    assert isinstance(agent, TPEScheduleAgent)
    agent.learn(rounds * 60)
    played = np.array([agent.act(obs) for obs in progress_obs(rounds)], dtype=np.float64)
    phases = played[::2]  # rounds 0-1, 2-3 and 4-5
    np.testing.assert_array_equal(played[1::2], phases)
    assert len({tuple(p) for p in phases}) == 3
    distances = np.linalg.norm(phases[:, None, :] - targets[None, :, :], axis=-1)
    np.testing.assert_array_equal(distances.argmin(axis=1), [0, 1, 2])  # each phase near its own target


@pytest.mark.parametrize("name", ["tpe-constant", "tpe-schedule"])
def test_same_seed_same_trials_and_save_load_goes_on_as_if_it_had_not_stopped(name: str, tmp_path: Path) -> None:
    def trained(seed: int) -> Any:
        agent = make_agent(name, QuadraticEnv(np.stack([TARGET] * 3), rounds=3), seed=seed, n_startup_trials=3)
        agent.learn(18)
        return agent

    first, second, other = trained(7), trained(7), trained(8)
    assert first.units == second.units and first.returns == second.returns
    assert first.units != other.units
    obs = progress_obs(3)
    for o in obs:
        np.testing.assert_array_equal(first.act(o), second.act(o))

    first.save(tmp_path / name)
    loaded = load_agent(tmp_path / name, QuadraticEnv(np.stack([TARGET] * 3), rounds=3))
    assert type(loaded) is type(first) and loaded.num_steps == 18 and loaded.hyper == first.hyper
    for o in obs:
        np.testing.assert_array_equal(loaded.act(o), first.act(o))
    loaded.learn(30)
    first.learn(30)
    assert loaded.units == first.units and loaded.returns == first.returns


def test_tpe_hyper_parameters_are_checked() -> None:
    check_hyper("tpe-constant", {"n_startup_trials": 5, "multivariate": False})
    with pytest.raises(UserError, match='n_startup_trials="5" .* must be an integer'):
        check_hyper("tpe-schedule", {"n_startup_trials": "5"})
    with pytest.raises(UserError, match="n_startup_trials must be at least 1"):
        make_agent("tpe-constant", QuadraticEnv(TARGET, rounds=2), n_startup_trials=0)


def test_without_optuna_the_tpe_agents_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(UserError, match=r"^agent 'tpe-constant' needs Optuna: pip install 'ssdkd_env\[tpe\]'$"):
        make_agent("tpe-constant", QuadraticEnv(TARGET, rounds=2))


def test_linucb_learns_that_the_best_arm_depends_on_the_context(tmp_path: Path) -> None:
    env = ContextEnv()
    agent = make_agent("linucb", env, seed=0, arms="all", exploration=0.5)
    agent.learn(300)
    contexts = np.eye(3, dtype=np.float32)
    assert [agent.act(x) for x in contexts] == [0, 1, 2]
    mean, _ = agent.scores(contexts[1])
    assert mean[1] == pytest.approx(1.0, abs=0.15)  # the played arm's prediction is its mean reward

    agent.save(tmp_path / "linucb")
    loaded = load_agent(tmp_path / "linucb", ContextEnv())
    for x in contexts:
        assert loaded.act(x) == agent.act(x)
        assert loaded.act(x, deterministic=False) == agent.act(x, deterministic=False)


def test_linucb_refuses_what_it_cannot_play() -> None:
    with pytest.raises(UserError, match="arms='all' needs an environment with action_mode='discrete'"):
        make_agent("linucb", QuadraticEnv(TARGET, rounds=2), arms="all")
    with pytest.raises(UserError, match="arms must be one of curated, all"):
        make_agent("linucb", ContextEnv(), arms="some")
