"""The agents: registry, learn/act/save/load round trips, and each built-in agent's behaviour."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import TINY, nested, random_teacher, saved_random_teacher

from agents import AGENTS, list_agents, load_agent, make_agent, preferred_action_mode
from agents.builtin.random_agent import RandomAgent
from agents.common.evaluation import EvalJob, evaluate_jobs
from ssdkd_env.env import make_env
from ssdkd_env.env.evaluation import make_env_config
from ssdkd_env.errors import UserError

NAMES = {
    *("random", "fixed", "ssdkd", "uniform", "ucb", "linucb", "reinforce", "search", "tpe-constant", "tpe-schedule"),
    *("ppo", "a2c", "dqn", "sac", "td3"),  # Stable-Baselines3
}
# Small enough that every learner updates within two 3-round episodes.
TINY_HYPER: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 4, "batch_size": 4, "n_epochs": 1},
    "a2c": {"n_steps": 2},
    "dqn": {"learning_starts": 2, "batch_size": 4, "buffer_size": 64, "target_update_interval": 2},
    "sac": {"learning_starts": 2, "batch_size": 4, "buffer_size": 64},
    "td3": {"learning_starts": 2, "batch_size": 4, "buffer_size": 64},
}
REPORT_LOSSES = {"reinforce", "ppo", "a2c", "dqn", "sac", "td3", "search", "tpe-constant", "tpe-schedule"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: fastest on one thread (conftest.py)


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    return random_teacher()


def tiny_env(teacher: torch.nn.Module, **kwargs: Any) -> Any:
    """The canonical environment, or a discrete form of it (``action_mode``), as make_env builds it."""
    return make_env(teacher_model=teacher, task="digits", device="cpu", **{**TINY, **kwargs})


def agent_env(name: str, teacher: torch.nn.Module) -> Any:
    return tiny_env(teacher, action_mode=preferred_action_mode(name))


def test_registry_holds_every_agent() -> None:
    assert set(list_agents()) == NAMES == set(AGENTS)
    assert list_agents() == sorted(NAMES)
    assert preferred_action_mode("ppo") == "continuous"
    assert preferred_action_mode("dqn") == "discrete"
    assert preferred_action_mode("ucb") in ("discrete", "multi_discrete")
    for cls in AGENTS.values():
        assert isinstance(cls.learns, bool) and cls.action_modes


@pytest.mark.parametrize("name", sorted(NAMES))
def test_agent_learns_acts_saves_and_resumes(
    name: str, teacher: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where SB3 would drop its log folders
    env = agent_env(name, teacher)
    agent = make_agent(name, env, seed=0, **TINY_HYPER.get(name, {}))
    records: list[dict[str, Any]] = []
    agent.learn(6, records.append)

    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["done"] for r in records] == [False, False, True, False, False, True]
    assert [r["episode"] for r in records] == [0, 0, 0, 1, 1, 1]
    assert all("probe_agreement" in r and "terminal_observation" not in r for r in records)  # the env's info
    for end in (2, 5):
        episode_rewards = [r["reward"] for r in records[end - 2 : end + 1]]
        assert records[end]["episode_return"] == pytest.approx(sum(episode_rewards), abs=1e-5)
        assert records[end]["episode_length"] == 3
    losses = [r["losses"] for r in records if "losses" in r]
    if name in REPORT_LOSSES:
        assert losses and all(np.isfinite(v) for d in losses for v in d.values())
    else:
        assert not losses
    assert agent.num_steps == 6 and agent.num_episodes == 2

    obs, _ = env.reset(seed=1)
    for deterministic in (True, False):
        assert env.action_space.contains(agent.act(obs, deterministic=deterministic))

    agent.save(tmp_path / name)
    expected = agent.act(obs)
    loaded = load_agent(tmp_path / name, env)
    assert type(loaded) is type(agent)
    assert loaded.num_steps == 6 and loaded.num_episodes == 2 and loaded.hyper == agent.hyper
    np.testing.assert_array_equal(loaded.act(obs), expected)

    more: list[dict[str, Any]] = []
    loaded.learn(6, more.append)  # already there
    assert more == []
    loaded.learn(8, more.append)  # continues counting from the checkpoint
    assert [r["step"] for r in more] == [7, 8] and loaded.num_steps == 8
    assert list(scratch.iterdir()) == []  # nothing left in the temp folder


@pytest.mark.parametrize("name", ["random", "reinforce", "ppo", "sac"])
def test_callback_returning_false_stops_and_learn_continues_the_episode(name: str, teacher: torch.nn.Module) -> None:
    agent = make_agent(name, agent_env(name, teacher), **TINY_HYPER.get(name, {}))
    calls: list[int] = []

    def stop_at_two(record: dict[str, Any]) -> bool:
        calls.append(record["step"])
        return record["step"] < 2

    agent.learn(6, stop_at_two)
    assert calls == [1, 2] and agent.num_steps == 2
    records: list[dict[str, Any]] = []
    agent.learn(4, records.append)
    assert [(r["step"], r["done"]) for r in records] == [(3, True), (4, False)]


def test_ssdkd_and_uniform_decode_to_the_configured_decisions(teacher: torch.nn.Module) -> None:
    env = tiny_env(teacher)
    obs, _ = env.reset(seed=0)
    configured = env.config.engine.action
    assert env.decode_action(make_agent("ssdkd", env).act(obs)) == configured
    assert env.decode_action(make_agent("fixed", env).act(obs)) == configured
    assert env.decode_action(make_agent("uniform", env).act(obs)) == dataclasses.replace(configured, alpha=0, beta=0)

    discrete = tiny_env(teacher, action_mode="multi_discrete")
    np.testing.assert_array_equal(make_agent("ssdkd", discrete).act(obs), discrete.default_action())
    snapped = env.decode_action(discrete.action(discrete.default_action()))
    # the 3-point grid holds SSD-KD's eviction rule and phi (mid-range) exactly; alpha, beta and the budget snap
    assert (snapped.eviction, snapped.diversity, snapped.difficulty) == ("lowest", 1.0, 2.0)


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_gaussian_policy_started_at_the_rule_acts_the_rule_with_the_asked_spread(
    name: str, teacher: torch.nn.Module
) -> None:
    env = tiny_env(teacher)
    obs, _ = env.reset(seed=0)
    rule = env.default_action()
    started = make_agent(name, env, start_at_rule=True, initial_std=0.1)
    # SB3's action layer starts with weights near zero (gain 0.01): the mean is the rule to within 0.05
    np.testing.assert_allclose(started.act(obs), rule, atol=0.05)
    draws = np.stack([started.act(obs, deterministic=False) for _ in range(400)])
    inside = np.abs(rule) < 0.7  # dimensions where clipping to the box does not cut the spread
    np.testing.assert_allclose(draws.std(axis=0)[inside], 0.1, rtol=0.2)
    plain = make_agent(name, env)  # SB3's start: the centre of the box, standard deviation 1
    np.testing.assert_allclose(plain.act(obs), 0.0, atol=0.05)
    assert float(plain.model.policy.log_std.exp().mean()) == pytest.approx(1.0)
    with pytest.raises(UserError, match="initial_std"):
        make_agent(name, env, initial_std=0.0)
    with pytest.raises(UserError, match="continuous"):
        make_agent(name, tiny_env(teacher, action_mode="multi_discrete"), start_at_rule=True)
    at_uniform = make_agent(name, env, start_at_uniform=True, initial_std=0.1)
    uniform = env.decode_action(make_agent("uniform", env).act(obs))
    assert (uniform.alpha, uniform.beta) == (0.0, 0.0)
    np.testing.assert_allclose(at_uniform.act(obs), make_agent("uniform", env).act(obs), atol=0.05)
    with pytest.raises(UserError, match="exclude each other"):
        make_agent(name, env, start_at_rule=True, start_at_uniform=True)


def test_fixed_agent_takes_the_given_action(teacher: torch.nn.Module) -> None:
    env = tiny_env(teacher)
    action = [1.0, -1.0, 0.0, -0.5, 0.5, 0.9, -1.0]
    agent = make_agent("fixed", env, action=action)
    np.testing.assert_allclose(agent.act(np.zeros(39, np.float32)), action)
    decision = env.decode_action(agent.act(np.zeros(39, np.float32)))
    assert (decision.alpha, decision.beta, decision.replace_fraction) == (2.0, 0.0, 0.375)
    assert (decision.diversity, decision.difficulty) == (1.0, 1.0)
    assert (decision.eviction, decision.synth_budget) == ("class", 8)
    with pytest.raises(UserError, match="7 numbers"):
        make_agent("fixed", env, action=[0.0, 2.0])


def test_bad_names_modes_and_hyper_parameters_are_user_errors(teacher: torch.nn.Module) -> None:
    env = tiny_env(teacher)
    with pytest.raises(UserError, match="unknown agent 'nope'") as excinfo:
        make_agent("nope", env)
    assert all(name in str(excinfo.value) for name in NAMES)
    with pytest.raises(UserError, match="unknown agent"):
        preferred_action_mode("nope")
    with pytest.raises(UserError, match="action_mode='discrete'"):
        make_agent("dqn", env)
    with pytest.raises(UserError, match="unknown hyper-parameters.*bogus"):
        make_agent("ppo", env, bogus=1)
    with pytest.raises(UserError, match="unknown hyper-parameters"):
        make_agent("reinforce", env, n_steps=4)
    discrete = tiny_env(teacher, action_mode="discrete")
    for name in ("sac", "td3", "reinforce"):
        with pytest.raises(UserError, match="action_mode='continuous'"):
            make_agent(name, discrete)


def test_loading_checks_what_the_folder_holds(teacher: torch.nn.Module, tmp_path: Path) -> None:
    env = tiny_env(teacher)
    with pytest.raises(UserError, match="not a saved agent"):
        load_agent(tmp_path, env)
    make_agent("fixed", env).save(tmp_path / "fixed")
    with pytest.raises(UserError, match="holds agent 'fixed'"):
        RandomAgent.load(tmp_path / "fixed", env)


def test_save_replaces_an_existing_checkpoint_without_leftovers(teacher: torch.nn.Module, tmp_path: Path) -> None:
    env = tiny_env(teacher)
    agent = make_agent("random", env, seed=3)
    agent.save(tmp_path / "agent")
    agent.learn(2)
    agent.save(tmp_path / "agent")
    assert [p.name for p in tmp_path.iterdir()] == ["agent"]
    meta = json.loads((tmp_path / "agent" / "agent.json").read_text())
    assert meta["agent"] == "random" and meta["num_steps"] == 2 and meta["seed"] == 3


def test_reinforce_updates_its_parameters_at_the_end_of_an_episode(teacher: torch.nn.Module) -> None:
    agent = make_agent("reinforce", tiny_env(teacher))
    before = [p.detach().clone() for p in agent.policy.parameters()]
    records: list[dict[str, Any]] = []
    agent.learn(2, records.append)
    assert all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    agent.learn(3, records.append)
    assert set(records[-1]["losses"]) == {"policy_loss", "value_loss", "entropy"}
    assert not all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))


def test_ucb_plays_every_arm_once_before_repeating(teacher: torch.nn.Module) -> None:
    env = tiny_env(teacher, action_mode="discrete")
    agent = make_agent("ucb", env)
    n = len(agent.arms)
    assert 8 <= n <= 13 and len(set(agent.arms)) == n
    assert agent.arms[0] == env.default_action()
    records: list[dict[str, Any]] = []
    agent.learn(n, records.append)
    assert agent.counts.tolist() == [1] * n
    assert len({json.dumps(r["action"], sort_keys=True) for r in records}) == n  # n distinct decisions played
    agent.learn(n + 1)
    assert agent.counts.sum() == n + 1 and agent.counts.max() == 2
    best = int(np.argmax(agent.means))
    assert agent.act(np.zeros(39, np.float32)) == agent.arms[best]

    continuous = make_agent("ucb", tiny_env(teacher))
    np.testing.assert_array_equal(continuous.arms[0], continuous.env.default_action())
    # diversity 1 and difficulty 2 (the middle of their ranges) and eviction "lowest" are already the default
    assert len(continuous.arms) == 13


@pytest.mark.parametrize(("n_steps", "updates"), [(3, 2), (4, 1)])
def test_sb3_stops_exactly_at_total_steps_and_trains_completed_rollouts(
    teacher: torch.nn.Module, n_steps: int, updates: int
) -> None:
    agent = make_agent("ppo", tiny_env(teacher), n_steps=n_steps, batch_size=n_steps, n_epochs=1)
    agent.learn(6)
    assert agent.num_steps == agent.model.num_timesteps == 6
    assert agent.model.logger.name_to_value["train/n_updates"] == updates


def test_evaluation_jobs_give_each_seed_the_same_episode_however_they_are_split(tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"engine": nested({**TINY, "rounds": 2})}))
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    config = make_env_config("digits", "continuous", config_file=env_file, teacher=str(teacher), device="cpu")
    data = config.to_dict()
    # one job of three seeds, against three jobs of one seed after other policies used the same environment
    whole = evaluate_jobs([EvalJob("ssdkd", "ssdkd", data, (7, 8, 9), keep_last=True)])
    split = evaluate_jobs(
        [EvalJob("uniform", "uniform", data, (9,))]
        + [EvalJob("ssdkd", "ssdkd", data, (seed,), train_seed=3) for seed in (9, 8, 7)]
    )
    by_seed = {e["seed"]: e for r in split[1:] for e in r.episodes}
    for episode in whole[0].episodes:
        other = by_seed[episode["seed"]]
        assert other["train_seed"] == 3 and episode["train_seed"] == 0
        assert (other["return"], other["student_acc"], other["rounds"]) == (
            episode["return"],
            episode["student_acc"],
            episode["rounds"],
        )
    assert split[0].episodes[0]["return"] != by_seed[9]["return"]  # uniform is another policy
    kept = whole[0].kept  # the student and memory at the end of the last episode (seed 9)
    assert kept is not None and split[1].kept is None
    assert kept.images.shape[0] == kept.classes.shape[0] == kept.confidence.shape[0] > 0
    assert ((kept.confidence > 0) & (kept.confidence <= 1)).all()
    assert isinstance(kept.student, torch.nn.Module)


@pytest.mark.parametrize(
    "name", ["fixed", "ssdkd", "search", "tpe-constant", "tpe-schedule", "ucb", "linucb", "random", "reinforce"]
)
def test_built_in_agents_act_in_a_method_whose_box_is_smaller(name: str, teacher: torch.nn.Module) -> None:
    """pre-dfkd acts on 2 decisions only: the agents that build actions from the catalogue of
    decisions size them by the method's own fields."""
    env = tiny_env(teacher, method="pre-dfkd", action_mode=preferred_action_mode(name))
    assert env.unwrapped.action_names == ["replace_fraction", "synth_budget"]
    hyper = {"action": [0.5, -0.5]} if name == "fixed" else {}
    agent = make_agent(name, env, seed=0, **hyper)
    agent.learn(3)
    obs, _ = env.reset(seed=1)
    assert env.action_space.contains(agent.act(obs))
    if name == "fixed":
        with pytest.raises(UserError, match="2 numbers .*replace_fraction, synth_budget"):
            make_agent("fixed", env, action=[0.0] * 7)
