"""The Gymnasium environment: API checks, determinism, divergence, actions, observations."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from helpers import TINY, random_teacher
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ssdkd_env  # noqa: F401  (registers the environments)
from ssdkd_env.engine import make_config
from ssdkd_env.env import ACTION_FIELDS, DistillationEnv, EnvConfig, make_env, observation_fields
from ssdkd_env.errors import UserError
from ssdkd_env.replay import ReplayBuffer
from ssdkd_env.tasks import get_task
from ssdkd_env.teachers import obtain_teacher


def tiny_env(**kwargs: object) -> DistillationEnv:
    return DistillationEnv(teacher_model=random_teacher(), task="digits", device="cpu", **{**TINY, **kwargs})


def test_building_an_env_never_trains_a_teacher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSDKD_ENV_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match="train_teacher=True"):
        gym.make("SSDKD-v0", task="fashion-mnist")  # a task the zoo ships no teacher for
    gym.make("SSDKD-Digits-Tiny-v0").close()  # digits: the zoo's teacher, loaded, not trained
    assert not (tmp_path / "empty-cache").exists()


def test_registered_tiny_variant_passes_both_env_checkers() -> None:
    obtain_teacher(get_task("digits"), None, None, False, torch.device("cpu"), progress=False, train=True)
    env = gym.make("SSDKD-Digits-Tiny-v0")
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("mode", ["multi_discrete", "discrete"])
def test_discrete_forms_pass_the_checkers(mode: str) -> None:
    env = make_env(teacher_model=random_teacher(), task="digits", device="cpu", action_mode=mode, **TINY)
    assert isinstance(env.unwrapped.action_space, gym.spaces.Box)  # the canonical form underneath
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)


def test_same_seed_and_actions_give_identical_trajectories() -> None:
    def rollout(seed: int) -> tuple[list[np.ndarray], list[float]]:
        env = tiny_env()
        rng = np.random.default_rng(123)
        obs, _ = env.reset(seed=seed)
        observations, rewards = [obs], []
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            observations.append(obs)
            rewards.append(reward)
            done = terminated or truncated
            assert "wall_time_s" not in info
        return observations, rewards

    obs_a, rew_a = rollout(7)
    obs_b, rew_b = rollout(7)
    assert len(rew_a) == 3 and rew_a == rew_b
    assert all(np.array_equal(a, b) for a, b in zip(obs_a, obs_b, strict=True))
    _, rew_c = rollout(8)
    assert rew_c != rew_a


def test_rewards_telescope_to_final_minus_initial_quality() -> None:
    env = tiny_env(compute_cost=0.0)
    _, info = env.reset(seed=0)
    start, total, done = info["quality"], 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.default_action())
        total += reward
        done = terminated or truncated
    assert start == pytest.approx(0.1)  # chance level for 10 classes, whatever the random init
    assert total == pytest.approx(info["quality"] - start, abs=1e-6)
    assert info["quality"] == info["probe_agreement"]


def test_compute_cost_is_charged_per_sample() -> None:
    free, paid = tiny_env(compute_cost=0.0), tiny_env(compute_cost=0.01)
    free.reset(seed=0)
    paid.reset(seed=0)
    action = free.default_action()
    _, r_free, *_ = free.step(action)
    _, r_paid, *_ = paid.step(action)
    assert r_free - r_paid == pytest.approx(0.01 * 32)


def test_oracle_reward_is_real_test_accuracy() -> None:
    env = tiny_env(reward="oracle")
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.default_action())
    assert info["quality"] == info["test_acc"] and 0.0 <= info["quality"] <= 1.0


def test_nan_in_a_loss_truncates_and_reset_recovers() -> None:
    env = tiny_env()
    env.reset(seed=0)
    last_obs, *_ = env.step(env.default_action())
    engine = env.engine
    assert engine is not None
    engine.distiller.config.temperature = float("nan")  # the next KD loss is NaN
    obs, reward, terminated, truncated, info = env.step(env.default_action())
    assert truncated and not terminated and info["diverged"] and reward == -1.0
    assert env.observation_space.contains(obs) and np.array_equal(obs, last_obs)  # the last sound observation
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.default_action())
    obs, _ = env.reset(seed=1)
    _, _, _, truncated, info = env.step(env.default_action())
    assert not truncated and not info["diverged"] and np.isfinite(obs).all()


def test_action_mapping_covers_documented_ranges() -> None:
    env = tiny_env()
    low = env.decode_action(-np.ones(7))
    high = env.decode_action(np.ones(7))
    assert (low.alpha, low.beta, low.replace_fraction, low.eviction) == (0.0, 0.0, 0.0, "lowest")
    assert (high.alpha, high.beta, high.replace_fraction, high.eviction) == (2.0, 1.0, 0.5, "class")
    assert (low.diversity, low.difficulty, high.diversity, high.difficulty) == (0.0, 0.0, 2.0, 4.0)
    assert low.synth_budget == 8 and high.synth_budget == 64  # 0.25x and 2x of the default 32
    assert env.decode_action(np.zeros(7)).eviction == "oldest"
    discrete = make_env(teacher_model=random_teacher(), task="digits", device="cpu", action_mode="discrete", **TINY)
    assert discrete.action_space.n == 3**7
    assert env.decode_action(discrete.action(0)).alpha == 0.0
    assert env.decode_action(discrete.action(3**7 - 1)).alpha == 2.0


def test_diversity_and_difficulty_are_controlled_separately() -> None:
    env = tiny_env()
    diversity, difficulty = (i for i, f in enumerate(ACTION_FIELDS) if f.name in ("diversity", "difficulty"))
    unit = env.default_action()
    for value in (-1.0, 0.0, 1.0):
        moved = unit.copy()
        moved[diversity] = value
        decoded = env.decode_action(moved)
        assert decoded.difficulty == env.config.engine.action.difficulty  # untouched by the diversity dimension
        assert decoded.diversity == pytest.approx(value + 1.0)


def test_observation_layout_is_documented_and_bounded() -> None:
    env = tiny_env()
    fields = observation_fields(10, ReplayBuffer)
    assert [f.name for f in fields] == env.observation_names
    assert sum(f.size for f in fields) == env.observation_space.shape[0] == 19 + 2 * 10
    assert np.isfinite(env.observation_space.low).all() and np.isfinite(env.observation_space.high).all()
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.ones(7, dtype=np.float32))
    names = [f.name for f in fields for _ in range(f.size)]
    values = dict(zip(names, obs, strict=True))
    assert values["progress"] == pytest.approx(1 / 3)
    assert obs[names.index("class_share") : names.index("class_share") + 10].sum() == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(obs[-7:], 1.0)  # the previous action
    assert len(ACTION_FIELDS) == 7


def test_render_returns_a_sample_grid() -> None:
    env = tiny_env(render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.default_action())
    frame = env.render()
    assert frame is not None and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.std() > 0
    assert frame.shape[0] == 10 * (32 + 1) + 1  # ten class rows of 8x8 digits upscaled to 32x32, 1-pixel padding


def test_config_round_trips_through_yaml_and_json(tmp_path: Path) -> None:
    config = EnvConfig(engine=make_config("digits", rounds=7), reward="oracle", action_mode="discrete")
    for name in ("env.yaml", "env.json"):
        config.save(tmp_path / name)
        loaded = EnvConfig.load(tmp_path / name)
        assert loaded == config
    with pytest.raises(UserError, match="reward='accuracy'"):
        EnvConfig.from_dict({"reward": "accuracy"})
    with pytest.raises(UserError, match="unknown EnvConfig keys"):
        EnvConfig.from_dict({"rewards": "probe"})


def test_episodes_do_not_pile_hooks_on_the_shared_teacher() -> None:
    env = tiny_env()
    bn_layers = [m for m in env.teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for seed in range(3):
        env.reset(seed=seed)
        env.step(env.default_action())
        assert all(len(bn._forward_hooks) == 1 for bn in bn_layers)
    env.close()
    assert all(len(bn._forward_hooks) == 0 for bn in bn_layers)
