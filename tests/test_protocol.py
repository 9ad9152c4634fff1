"""The evaluation protocol: regimes, the searched-constant baseline, paired tests and CIs over training seeds."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, random_teacher
from scipy import stats

from agents import make_agent
from agents.builtin.search import ConstantSearchAgent
from ssdkd_env.env import make_env, observation_fields
from ssdkd_env.env.evaluation import default_total_steps, make_env_config
from ssdkd_env.env.regimes import REGIMES
from ssdkd_env.errors import UserError
from ssdkd_env.observation import observation_space
from ssdkd_env.replay import MEMORIES
from ssdkd_env.tasks import get_task

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
import compare  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_digits_agent_runs_default_to_the_budget_regime_and_full_keeps_the_task_run() -> None:
    budget = make_env_config("digits", "continuous")
    assert budget.engine.rounds == 10 and budget.engine.kd_steps == 25 and budget.engine.action.synth_budget == 64
    assert budget.compute_cost == REGIMES.get("budget").env["compute_cost"]
    full = make_env_config("digits", "continuous", regime="full")
    assert full.engine.rounds == 30 and full.engine.kd_steps == 40 and full.compute_cost == 1e-6
    assert make_env_config("digits", "continuous", regime="budget", rounds=4).engine.rounds == 4  # flags win
    assert default_total_steps("digits", None) == 600 and default_total_steps("digits", "full") == 600
    with pytest.raises(UserError, match="budget"):
        make_env_config("digits", "continuous", regime="tiny")


def test_a_policy_trained_on_one_ten_class_task_sees_the_same_observation_on_another() -> None:
    spaces = []
    for task in ("digits", "mnist", "cifar10-cpu"):
        config = make_env_config(task, "continuous", regime="budget")
        fields = observation_fields(get_task(task).num_classes, MEMORIES.get(config.engine.memory))
        spaces.append(observation_space(fields))
    assert spaces[0] == spaces[1] == spaces[2]  # same size and the same fixed bounds


def test_search_plays_one_candidate_per_episode_and_acts_with_the_best() -> None:
    env = make_env(teacher_model=random_teacher(), task="digits", device="cpu", **{**TINY, "rounds": 2})
    agent = make_agent("search", env, seed=3)
    assert isinstance(agent, ConstantSearchAgent)
    played: list[np.ndarray] = []
    agent.learn(8, callback=lambda record: played.append(np.asarray(record["action"]["alpha"])))
    assert agent.num_episodes == 4 and sum(1 for r in agent.returns if r) == 4
    best = int(np.argmax([np.mean(r) if r else -np.inf for r in agent.returns]))
    np.testing.assert_allclose(agent.act(np.zeros(1)), np.asarray(agent.candidates[best], dtype=np.float32))
    # within an episode the action is constant; it changes between episodes
    assert played[0] == played[1] and played[2] == played[3] and played[0] != played[2]
    state = agent.state_dict()
    again = make_agent("search", env, seed=99)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.act(np.zeros(1)), agent.act(np.zeros(1)))


def test_paired_test_matches_scipy_and_reports_the_detectable_difference() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.02, 6), rng.normal(0.88, 0.02, 6)
    result = compare.paired_test(list(a - b))
    expected = stats.ttest_rel(a, b)
    assert result["p_value"] == pytest.approx(expected.pvalue)
    se = np.std(a - b, ddof=1) / math.sqrt(6)
    assert result["detectable"] == pytest.approx((stats.t.ppf(0.975, 5) + stats.t.ppf(0.8, 5)) * se)
    assert result["ci95_low"] < result["mean"] < result["ci95_high"]


def episode(train_seed: int, seed: int, acc: float) -> dict:
    return {"train_seed": train_seed, "seed": seed, "student_acc": acc, "probe_agreement": None, "return": acc}


def test_a_learner_is_summarised_over_training_seeds_and_paired_by_evaluation_seed() -> None:
    reference = [episode(0, s, 0.5 + 0.1 * s) for s in range(3)]  # the fixed rule: one training seed
    learner = [episode(t, s, 0.5 + 0.1 * s + 0.01 * (t + 1)) for t in range(4) for s in range(3)]
    summary = compare.summarise(learner, train_seeds=4)
    assert summary["student_acc"]["n"] == 4  # over training seeds, not over the 12 episodes
    assert summary["student_acc"]["mean"] == pytest.approx(0.6 + 0.025)
    paired = compare.paired_against(learner, reference)["student_acc"]
    assert paired["over"] == "training seeds" and paired["n"] == 4
    assert paired["mean"] == pytest.approx(0.025)  # the seed-to-seed spread of the rule cancels out
    fixed = compare.paired_against([episode(0, s, 0.4 + 0.1 * s) for s in range(3)], reference)["student_acc"]
    assert fixed["over"] == "evaluation seeds" and fixed["mean"] == pytest.approx(-0.1) and fixed["std"] < 1e-12


def test_a_learner_against_a_learner_pairs_training_seed_with_training_seed() -> None:
    # training seed t of the reference scores t / 10 above its eval-seed baseline; the policy 0.02 above that
    reference = [episode(t, s, 0.3 + 0.1 * s + 0.1 * t) for t in range(3) for s in range(4)]
    learner = [episode(t, s, 0.32 + 0.1 * s + 0.1 * t) for t in range(3) for s in range(4)]
    paired = compare.paired_against(learner, reference)["student_acc"]
    assert paired["over"] == "training seeds" and paired["n"] == 3
    assert paired["mean"] == pytest.approx(0.02) and paired["std"] < 1e-12
    # a fixed policy (one training seed) is paired with the reference's mean over its training seeds
    fixed = compare.paired_against([episode(0, s, 0.4 + 0.1 * s) for s in range(4)], reference)["student_acc"]
    assert fixed["over"] == "evaluation seeds" and fixed["mean"] == pytest.approx(0.0) and fixed["std"] < 1e-12


def test_policies_are_named_by_their_item_or_a_given_label(tmp_path: Path) -> None:
    for s in (0, 1):
        (tmp_path / f"ppo-s{s}").mkdir()
    template = str(tmp_path / "ppo-s{seed}")
    specs = compare.policy_specs(f"ssdkd,rule-start:ppo={template},ppo={template}", [0, 1])
    assert [(s.label, s.name) for s in specs] == [("ssdkd", "ssdkd"), ("rule-start", "ppo"), (f"ppo={template}", "ppo")]
    assert specs[1].paths == {0: tmp_path / "ppo-s0", 1: tmp_path / "ppo-s1"}
    with pytest.raises(UserError, match="LABEL:NAME=PATH"):
        compare.policy_specs(f"a:ppo={template},a:ppo={template}", [0, 1])
    with pytest.raises(UserError, match="unknown agent 'nope'"):
        compare.policy_specs(f"label:nope={template}", [0, 1])
