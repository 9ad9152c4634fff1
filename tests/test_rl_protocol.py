"""The statistics of Agarwal et al. 2021 (ssdkd_env/reporting/rl_protocol.py) against hand-computed
values, and their place in train/compare.py's tables and figure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scripts import assert_one_line_error, load_script, run_in_process

from ssdkd_env.errors import UserError
from ssdkd_env.reporting.rl_protocol import iqm, probability_of_improvement

compare = load_script("compare")


def test_iqm_is_the_mean_of_the_middle_half_of_all_scores() -> None:
    scores = np.array([[0.1, 0.9], [0.4, 0.3], [0.8, 0.2], [0.5, 0.7]])
    # sorted: 0.1 0.2 | 0.3 0.4 0.5 0.7 | 0.8 0.9; the 25%-75% trimmed mean keeps the middle four
    estimate = iqm(scores, reps=200)
    assert estimate.value == pytest.approx((0.3 + 0.4 + 0.5 + 0.7) / 4)
    assert estimate.ci95_low <= estimate.value <= estimate.ci95_high


def test_probability_of_improvement_counts_wins_per_task_with_ties_as_half() -> None:
    x = np.array([[1.0, 3.0], [2.0, 5.0], [4.0, 5.0]])  # 3 runs x 2 tasks
    y = np.array([[2.0, 5.0], [0.0, 4.0]])  # 2 runs x 2 tasks
    # task 0, X {1, 2, 4} against Y {2, 0}: 1>0, 2=2 (1/2), 2>0, 4>2, 4>0 -> 4.5 of 6 pairs
    # task 1, X {3, 5, 5} against Y {5, 4}: 5=5 twice (1/2 each), 5>4 twice -> 3 of 6 pairs
    estimate = probability_of_improvement(x, y, reps=100)
    assert estimate.value == pytest.approx((4.5 / 6 + 3 / 6) / 2)
    assert estimate.ci95_low <= estimate.value <= estimate.ci95_high
    assert probability_of_improvement(y, y, reps=10).value == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(x, y[:, :1], reps=10)


def test_the_interval_narrows_with_more_runs() -> None:
    rng = np.random.default_rng(0)
    few, many = iqm(rng.normal(0.8, 0.1, (5, 3)), reps=500), iqm(rng.normal(0.8, 0.1, (80, 3)), reps=500)
    for estimate in (few, many):
        assert estimate.ci95_low <= estimate.value <= estimate.ci95_high
    assert many.ci95_high - many.ci95_low < (few.ci95_high - few.ci95_low) / 2


def test_a_seed_reproduces_the_interval_and_leaves_numpys_global_generator_alone() -> None:
    scores = np.random.default_rng(1).normal(size=(6, 2))
    np.random.seed(123)
    expected_draw = np.random.random()
    np.random.seed(123)
    first = iqm(scores, reps=300, seed=7)
    assert np.random.random() == expected_draw  # the bootstrap's seeding was undone
    assert iqm(scores, reps=300, seed=7) == first
    assert iqm(scores, reps=300, seed=8) != first
    other = scores + 1
    assert probability_of_improvement(other, scores, reps=50, seed=3) == probability_of_improvement(
        other, scores, reps=50, seed=3
    )


def test_a_missing_rliable_is_a_one_line_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rliable", None)  # `import rliable` now raises ImportError
    with pytest.raises(UserError) as raised:
        iqm(np.ones((2, 2)))
    assert 'pip install -e ".[rl]"' in str(raised.value) and "\n" not in str(raised.value)
    # compare.py refuses before it evaluates anything
    assert_one_line_error(run_in_process("compare", "--agents", "ssdkd"), 'pip install -e ".[rl]"')


def test_compare_refuses_a_bad_bootstrap_reps() -> None:
    assert_one_line_error(run_in_process("compare", "--bootstrap-reps", "0"), "--bootstrap-reps")


def episode(train_seed: int, seed: int, acc: float) -> dict:
    return {"train_seed": train_seed, "seed": seed, "student_acc": acc, "probe_agreement": None, "return": acc}


def test_compare_tabulates_iqm_and_probability_of_improvement(tmp_path: Path) -> None:
    rule = [episode(0, s, 0.5 + 0.1 * s) for s in range(3)]
    below = [episode(0, s, 0.45 + 0.1 * s) for s in range(3)]  # one training seed: a fixed policy
    learner = [episode(t, s, 0.55 + 0.1 * s) for t in range(4) for s in range(3)]  # beats the rule on every seed
    results = {
        "ssdkd": compare.summarise(rule, 1),
        "uniform": compare.summarise(below, 1),
        "ppo": compare.summarise(learner, 4),
    }
    compare.rl_protocol(results, "ssdkd", reps=200)
    assert results["ssdkd"]["iqm"]["student_acc"]["value"] == pytest.approx(0.6)
    assert "improvement" not in results["ssdkd"] and "probe_agreement" not in results["ssdkd"]["iqm"]
    # fixed against fixed: evaluation seeds are runs of one task, compared unpaired: {.45,.55,.65} vs {.5,.6,.7}
    assert results["uniform"]["improvement"]["student_acc"]["value"] == pytest.approx(3 / 9)
    # a learner against the fixed rule: per evaluation seed, every training seed beats it
    ppo = results["ppo"]["improvement"]["student_acc"]
    assert ppo["value"] == pytest.approx(1.0) and ppo["ci95_low"] == pytest.approx(1.0)
    compare.write_tables(tmp_path, results)
    compare.plot_protocol(tmp_path / "protocol.png", results, "ssdkd")
    table = (tmp_path / "compare.md").read_text()
    assert "| IQM [95% CI] | P(> reference) [95% CI] |" in table
    assert "| 1.000 [1.000, 1.000] |" in table
    rows = (tmp_path / "compare.csv").read_text().splitlines()
    assert rows[0].endswith(
        "iqm,iqm_ci95_low,iqm_ci95_high,p_improvement,p_improvement_ci95_low,p_improvement_ci95_high"
    )
    assert (tmp_path / "protocol.png").stat().st_size > 0
    # 12 scores, 4 each of .55 .65 .75: the middle six are .55, four .65 and .75
    assert results["ppo"]["iqm"]["student_acc"]["value"] == pytest.approx(0.65)


def test_every_pair_of_policies_gets_its_probability_of_improvement(tmp_path: Path) -> None:
    rule = [episode(0, s, 0.5 + 0.1 * s) for s in range(3)]
    constant = [episode(0, s, 0.45 + 0.1 * s) for s in range(3)]
    learner = [episode(t, s, 0.55 + 0.1 * s) for t in range(4) for s in range(3)]
    results = {
        "ssdkd": compare.summarise(rule, 1),
        "best-constant": compare.summarise(constant, 1),
        "ppo": compare.summarise(learner, 4),
    }
    pairwise = compare.pairwise_improvement(results, reps=200)
    results["ppo-mean-obs"] = compare.summarise([{**e, "student_acc": e["student_acc"] - 0.1} for e in learner], 4)
    pairwise = compare.pairwise_improvement(results, reps=200)
    assert set(pairwise) == {"ppo", "ppo-mean-obs"}  # rows: the learners; columns: every other policy
    assert set(pairwise["ppo"]) == {"ssdkd", "best-constant", "ppo-mean-obs"}
    # the learner beats both fixed policies on every evaluation seed, with every training seed
    assert pairwise["ppo"]["ssdkd"]["value"] == pytest.approx(1.0)
    assert pairwise["ppo"]["best-constant"]["ci95_low"] == pytest.approx(1.0)
    # its ablation, 0.1 lower on every seed: loses to the rule on every seed, ties it nowhere
    assert pairwise["ppo-mean-obs"]["ssdkd"]["value"] == pytest.approx(0.0)
    assert pairwise["ppo"]["ppo-mean-obs"]["value"] == pytest.approx(1.0)
    compare.write_tables(tmp_path, results, pairwise)
    row = "| ppo | 1.00 [1.00, 1.00] | 1.00 [1.00, 1.00] | — | 1.00 [1.00, 1.00] |"
    assert row in (tmp_path / "compare.md").read_text()


def test_the_mean_observation_ablation_replays_each_seed_on_its_episode_s_mean_observation() -> None:
    from agents.common.evaluation import EvalJob, EvalResult, ObservationReplaced

    job = EvalJob("ppo", "ppo", {}, (7, 8), Path("agent"), train_seed=3)
    episodes = [{"seed": 7, "mean_observation": [0.5, 1.0]}, {"seed": 8, "mean_observation": [0.0, -1.0]}]
    (ablation,) = compare.mean_observation_jobs(
        [EvalResult(job, episodes), EvalResult(EvalJob("ssdkd", "ssdkd", {}, (7,)), [])], ["ppo"]
    )
    assert (ablation.label, ablation.name, ablation.seeds, ablation.train_seed) == ("ppo-mean-obs", "ppo", (7, 8), 3)
    assert ablation.observations == {7: [0.5, 1.0], 8: [0.0, -1.0]}

    class Echo:
        def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
            return obs

    replaced = ObservationReplaced(Echo(), [0.5, 1.0])  # type: ignore[arg-type]
    np.testing.assert_array_equal(replaced.act(np.array([9.0, 9.0])), [0.5, 1.0])
    with pytest.raises(UserError, match="--mean-observation names no policy"):
        compare.ablated_labels("ssdkd,nope", compare.policy_specs("ssdkd,uniform", [0]))
