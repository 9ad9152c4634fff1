"""Vector environments: a copy passes both checkers, vector episodes equal single ones, seeding, Ray."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from helpers import TINY, saved_random_teacher
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents import make_agent
from ssdkd_env.engine import make_config
from ssdkd_env.env import EnvConfig, make_env
from ssdkd_env.env.vector import EnvGroup, GroupedVecEnv, connect_ray, make_vec_env, split
from ssdkd_env.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 5  # two-round episodes: the vector resets each environment twice on its own


def tiny_config(teacher: Path, rounds: int = 2) -> EnvConfig:
    return EnvConfig(engine=make_config("digits", **{**TINY, "rounds": rounds}), teacher=str(teacher), device="cpu")


def actions_for(env_index: int, steps: int = STEPS) -> np.ndarray:
    """A fixed sequence of random canonical actions per environment."""
    return np.random.default_rng(env_index).uniform(-1, 1, (steps, 7)).astype(np.float32)


def single_run(config: EnvConfig, seed: int, actions: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    """What one environment does with ``actions``, resetting itself (unseeded) after each episode."""
    env = make_env(config)
    env.reset(seed=seed)
    rewards, observations = [], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(float(reward))
        if terminated or truncated:
            obs, _ = env.reset()
        observations.append(obs)
    env.close()
    return rewards, observations


def vector_run(vec: GroupedVecEnv, seed: int) -> tuple[np.ndarray, np.ndarray]:
    vec.seed(seed)
    vec.reset()
    plan = np.stack([actions_for(i) for i in range(vec.num_envs)], axis=1)  # steps x envs x 7
    rewards, observations = [], []
    for actions in plan:
        obs, reward, _, _ = vec.step(actions)
        rewards.append(reward)
        observations.append(obs)
    return np.array(rewards), np.array(observations)


def test_split_is_even_and_complete() -> None:
    assert split(5, 2) == [3, 2] and split(4, 4) == [1, 1, 1, 1] and sum(split(64, 3)) == 64


def test_each_copy_of_a_group_passes_both_env_checkers(tmp_path: Path) -> None:
    group = EnvGroup(tiny_config(saved_random_teacher(tmp_path / "t.pt")).to_dict(), count=2)
    first, copy = group.envs
    assert copy.unwrapped.teacher is first.unwrapped.teacher  # one teacher per process
    assert copy.unwrapped.probe is first.unwrapped.probe
    gym_check_env(copy, skip_render_check=True)
    sb3_check_env(copy, warn=True)
    group.close()


@pytest.mark.parametrize("transport,workers", [("local", None), ("process", 2)])
def test_vector_episodes_equal_single_episodes_of_the_same_seeds(tmp_path: Path, transport: str, workers) -> None:
    config = tiny_config(saved_random_teacher(tmp_path / "t.pt"))
    vec = make_vec_env(config, 3, transport, n_workers=workers)
    rewards, observations = vector_run(vec, seed=40)
    vec.close()
    for i in range(3):
        single_rewards, single_obs = single_run(config, 40 + i, actions_for(i))
        np.testing.assert_array_equal(rewards[:, i], np.array(single_rewards, dtype=np.float32))
        np.testing.assert_array_equal(observations[:, i], np.array(single_obs))


def test_vector_seeding_reproduces_and_separates_runs(tmp_path: Path) -> None:
    vec = make_vec_env(tiny_config(saved_random_teacher(tmp_path / "t.pt")), 2)
    first, _ = vector_run(vec, seed=7)
    again, _ = vector_run(vec, seed=7)
    other, _ = vector_run(vec, seed=8)
    vec.close()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first[:, 0], first[:, 1])  # the environments of one vector differ


def test_bad_vector_arguments_are_one_line_errors(tmp_path: Path) -> None:
    config = tiny_config(saved_random_teacher(tmp_path / "t.pt"))
    with pytest.raises(UserError, match="n_envs"):
        GroupedVecEnv(config, 0)
    with pytest.raises(UserError, match="transport"):
        GroupedVecEnv(config, 2, transport="mpi")
    with pytest.raises(UserError, match="n_workers"):
        GroupedVecEnv(config, 2, transport="process", n_workers=3)


def test_a_worker_error_reaches_the_parent_as_the_same_user_error(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "missing-teacher.pt")
    with pytest.raises(UserError, match="missing-teacher"):
        make_vec_env(config, 2, "process", n_workers=1)


def test_ppo_learns_on_a_vector_and_counts_every_environment_step(tmp_path: Path) -> None:
    vec = make_vec_env(tiny_config(saved_random_teacher(tmp_path / "t.pt")), 2, seed=0)
    agent = make_agent("ppo", vec, seed=0, n_steps=4, batch_size=8, n_epochs=1, start_at_rule=True)
    rule = vec.env_method("default_action", indices=[0])[0]
    np.testing.assert_allclose(agent.act(vec.reset()), np.stack([rule, rule]), atol=0.05)  # read from the vector
    records: list[dict] = []
    agent.learn(8, callback=records.append)
    vec.close()
    assert agent.num_steps == 8 and [r["step"] for r in records] == list(range(1, 9))
    assert {r["env_index"] for r in records} == {0, 1}
    finished = [r for r in records if r["done"]]
    assert len(finished) == 4 and all(r["episode_length"] == 2 for r in finished)
    assert agent.num_episodes == 4


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_ray_transport_equals_the_local_one(tmp_path: Path) -> None:
    import ray

    config = tiny_config(saved_random_teacher(tmp_path / "t.pt"))
    local = make_vec_env(config, 2, "local")
    expected, _ = vector_run(local, seed=3)
    local.close()
    connect_ray(None, num_cpus=2)  # a local Ray instance
    try:
        remote = make_vec_env(config, 2, "ray", n_workers=2)  # two actors on a local Ray instance
        rewards, _ = vector_run(remote, seed=3)
        remote.close()
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(rewards, expected)
