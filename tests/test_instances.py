"""Instance sets: building, loading, exact replay and exact restore of reference-run states."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from helpers import TINY, saved_random_teacher
from scripts import load_script

import ssdkd_env  # noqa: F401  (registers the ids)
from agents.registry import make_agent
from ssdkd_env.env import DistillationEnv, EnvConfig
from ssdkd_env.env.evaluation import make_env_config, run_episode
from ssdkd_env.env.instance_builder import build_instance_set
from ssdkd_env.env.instances import INDEX_FILE, SUITES, Suite, load_instance_set
from ssdkd_env.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

SUITE = "tiny-test"
START, BUDGET = 2, 2
TINY_SUITE = Suite(
    "a tiny digits run for the tests",
    task="digits",
    seeds={"train": (0, 1), "test": (100,)},
    start_rounds=(1, START),
    budget=BUDGET,
    engine={**TINY, "rounds": START + BUDGET},
)
METRICS = ("round", "kd_loss", "batch_discrepancy", "probe_agreement", "probe_kl", "synthetic_samples", "kd_steps")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The tiny suite's two splits, built into a cache of their own: (cache, teacher file)."""
    cache = tmp_path_factory.mktemp("instances-cache")
    teacher = saved_random_teacher(cache / "teacher.pt")
    SUITES.add(SUITE, TINY_SUITE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSDKD_ENV_CACHE", str(cache))
        for split in ("train", "test"):
            assert build_instance_set(SUITE, split, teacher=teacher, device="cpu", progress=False).built
        yield cache, teacher
    SUITES.remove(SUITE)


@pytest.fixture
def cache(built: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SSDKD_ENV_CACHE", str(built[0]))
    return built[0]


def instance_env(split: str = "train") -> DistillationEnv:
    env = gym.make("SSDKD-v0", suite=SUITE, instance_set=split, device="cpu")
    assert isinstance(env.unwrapped, DistillationEnv)
    return env.unwrapped


def play(env: DistillationEnv, **reset: object) -> tuple[dict, list[np.ndarray], list[float], list[dict]]:
    """An episode of default actions: reset info, observations, rewards, step infos."""
    obs, info = env.reset(**reset)  # type: ignore[arg-type]
    observations, rewards, infos, done = [obs], [], [], False
    while not done:
        obs, reward, done, truncated, step_info = env.step(env.default_action())
        assert not truncated
        observations.append(obs)
        rewards.append(reward)
        infos.append(step_info)
    return info, observations, rewards, infos


def test_building_writes_the_index_and_states_and_loading_gives_the_same_instances(cache: Path) -> None:
    folder = cache / "instances" / SUITE / "train"
    index = json.loads((folder / INDEX_FILE).read_text())
    loaded = load_instance_set(SUITE, "train")
    assert [i["name"] for i in index["instances"]] == [i.name for i in loaded]
    assert [(i.seed, i.start_round, i.budget) for i in loaded] == [(0, 1, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2)]
    assert all((folder / i.state_file).is_file() for i in loaded)
    assert loaded.state(1)["round"] == START
    assert loaded.teacher.source == "checkpoint" and len(loaded.teacher.sha256) == 64
    again = build_instance_set(SUITE, "train", device="cpu", progress=False)  # cached: nothing is run
    assert not again.built and again.instances == loaded


def test_a_missing_state_file_is_a_one_line_error_naming_the_command(cache: Path) -> None:
    folder = cache / "instances" / SUITE / "test"
    state = folder / load_instance_set(SUITE, "test")[0].state_file
    saved = state.read_bytes()
    state.unlink()
    try:
        with pytest.raises(UserError, match="missing.*build_instances.py --suite tiny-test --split test") as err:
            load_instance_set(SUITE, "test")
        assert "\n" not in str(err.value)
    finally:
        state.write_bytes(saved)


def test_train_and_test_splits_share_no_reference_seed(cache: Path) -> None:
    train, test = load_instance_set(SUITE, "train"), load_instance_set(SUITE, "test")
    assert {i.seed for i in train}.isdisjoint({i.seed for i in test})
    with pytest.raises(ValueError, match="share no reference seed"):
        Suite("overlap", task="digits", seeds={"train": (0, 1), "test": (1,)}, start_rounds=(1,), budget=1)


def test_the_same_seed_replays_the_same_instance_exactly(cache: Path) -> None:
    first, second = instance_env(), instance_env()
    a, b = play(first, seed=3), play(second, seed=3)
    assert a[0]["instance"] == b[0]["instance"] and a[0]["instance_name"] == b[0]["instance_name"]
    np.testing.assert_array_equal(np.stack(a[1]), np.stack(b[1]))
    assert a[2] == b[2]
    picks = {instance_env().reset(seed=s)[1]["instance"] for s in range(8)}
    assert len(picks) > 1  # the seed chooses among them


def test_an_instance_continues_its_reference_run_exactly(cache: Path, built: tuple[Path, Path]) -> None:
    env = instance_env()
    info, _, _, infos = play(env, options={"instance": 1, "replay_reference": True})  # seed 0 after round START
    assert info["instance"] == 1 and info["instance_name"] == f"{SUITE}-train-s0-r{START}"
    assert len(infos) == BUDGET and [i["round"] for i in infos] == [START + 1, START + BUDGET]
    reference = DistillationEnv(
        EnvConfig(engine=TINY_SUITE.engine_config(), teacher=str(built[1]), device="cpu", probe_seed=0)
    )
    _, _, _, reference_infos = play(reference, seed=0)
    assert len(reference_infos) == START + BUDGET
    for ours, theirs in zip(infos, reference_infos[START:], strict=True):
        assert {k: ours[k] for k in METRICS} == {k: theirs[k] for k in METRICS}


def test_seeds_give_different_runs_from_the_same_instance_state(cache: Path) -> None:
    env = instance_env()
    runs = [play(env, seed=seed, options={"instance": 1}) for seed in (5, 6, 5)]
    assert [r[0]["episode_seed"] for r in runs] == [5, 6, 5]
    np.testing.assert_array_equal(runs[0][1][0], runs[1][1][0])  # the same starting state
    assert runs[0][3][-1]["probe_kl"] != runs[1][3][-1]["probe_kl"]  # then each seed's own randomness
    assert [i["probe_kl"] for i in runs[0][3]] == [i["probe_kl"] for i in runs[2][3]]  # and the same seed replays
    reference = play(env, seed=5, options={"instance": 1, "replay_reference": True})
    assert reference[0]["episode_seed"] == 0  # the reference run's own seed and random states


def test_reset_options_pick_the_instance_and_the_episode_ends_after_the_budget(cache: Path) -> None:
    env = instance_env("test")
    assert [i.name for i in env.instances or ()] == [f"{SUITE}-test-s100-r1", f"{SUITE}-test-s100-r2"]
    info, observations, _, infos = play(env, options={"instance": 0})
    assert info["instance"] == 0 and len(infos) == BUDGET and infos[-1]["round"] == 1 + BUDGET
    assert all(i["instance"] == 0 for i in infos)
    with pytest.raises(UserError, match="index in"):
        env.reset(options={"instance": 5})
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.default_action())


def test_an_instance_set_needs_its_suite_and_a_built_set(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="go together"):
        EnvConfig(instance_set="train")
    with pytest.raises(UserError, match="no instance set.*build_instances.py"):
        load_instance_set(SUITE, "train", tmp_path)


def test_a_suite_sets_the_configuration_and_refuses_flags_that_would_change_it(cache: Path) -> None:
    config = make_env_config("mnist", "continuous", suite=SUITE, instance_set="test", device="cpu")
    assert (config.suite, config.instance_set, config.engine.task) == (SUITE, "test", "digits")
    assert config.engine == TINY_SUITE.engine_config()
    with pytest.raises(UserError, match="--suite tiny-test fixes.*drop --rounds, --set"):
        make_env_config("digits", "continuous", suite=SUITE, rounds=3, engine_overrides={"kd_steps": 2})


def test_evaluation_seed_s_plays_instance_s_mod_n(cache: Path) -> None:
    env = instance_env("train")
    n = len(env.instances or ())
    rule = make_agent("ssdkd", env)
    played = [run_episode(env, rule, seed)["instance"] for seed in range(300, 300 + n + 1)]
    assert played == [seed % n for seed in range(300, 300 + n + 1)]


def test_decision_relevance_is_the_constants_spread_over_the_rules_seed_noise(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "relevance"
    argv = ["--suite", SUITE, "--constants", "3", "--rule-seeds", "2", "--device", "cpu", "--out", str(out)]
    assert load_script("decision_relevance").main([*argv, "--no-progress"]) == 0
    result = json.loads((out / "relevance.json").read_text())
    per_instance = np.array([c["per_instance"] for c in result["constants"]])
    scores = per_instance.mean(axis=1)
    np.testing.assert_allclose(scores, [c["score"] for c in result["constants"]])
    assert len(result["rule"]["scores"]) == 2 and per_instance.shape == (3, len(result["instances"]))
    noise = float(np.std(result["rule"]["scores"], ddof=1))
    if noise > 0:
        assert result["relevance"] == pytest.approx(float(np.std(scores, ddof=1)) / noise)
        assert result["relevance_range"] == pytest.approx(float(np.ptp(scores)) / noise)
    assert result["best_constant"]["score"] == pytest.approx(scores.max())
    assert result["best_per_instance_score"] == pytest.approx(per_instance.max(axis=0).mean())
    assert result["best_per_instance_score"] >= result["best_constant"]["score"]
    assert (out / "relevance.png").stat().st_size > 0 and "relevance" in (out / "relevance.md").read_text()
    assert set(result["sensitivity"]) == set(result["action_names"]) and result["reference"] == "ssdkd"
    with pytest.raises(UserError, match="at least 2"):
        load_script("decision_relevance").main([*argv[:-2], "--constants", "1", "--out", str(tmp_path / "other")])
    with pytest.raises(UserError, match="NAME=VALUE"):
        load_script("decision_relevance").main([*argv[:-2], "--fix", "alpha", "--out", str(tmp_path / "other")])
    with pytest.raises(UserError, match="not among"):
        load_script("decision_relevance").main([*argv[:-2], "--fix", "gamma=1", "--out", str(tmp_path / "other")])


def test_relevance_around_uniform_holds_the_fixed_decisions_in_every_constant(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "relevance"
    argv = ["--suite", SUITE, "--constants", "3", "--rule-seeds", "2", "--device", "cpu", "--out", str(out)]
    argv += ["--fix", "alpha=0", "--fix", "beta=0", "--reference", "uniform", "--no-progress"]
    assert load_script("decision_relevance").main(argv) == 0
    result = json.loads((out / "relevance.json").read_text())
    env = instance_env("test")
    uniform = env.encode_action(dataclasses.replace(env.config.engine.action, alpha=0.0, beta=0.0))
    names = result["action_names"]
    for constant in result["constants"]:
        decision = env.decode_action(np.asarray(constant["action"], dtype=np.float32))
        assert (decision.alpha, decision.beta) == (0.0, 0.0)
        assert constant["action"][names.index("alpha")] == pytest.approx(float(uniform[names.index("alpha")]))
    assert result["reference"] == "uniform" and result["fixed"] == {"alpha": 0.0, "beta": 0.0}
    assert set(result["sensitivity"]) == set(names) - {"alpha", "beta"}
    assert "Held decisions: alpha = 0, beta = 0" in (out / "relevance.md").read_text()


def test_a_study_keeps_each_seed_s_run_and_resumes_without_training_again(tmp_path: Path) -> None:
    """On the registered digits-tiny suite (the study's runs are processes of their own), the zoo's teacher."""
    sets = tmp_path / "sets"
    for split in ("train", "test"):
        build_instance_set("digits-tiny", split, root=sets, device="cpu", progress=False)
    out = tmp_path / "study"
    argv = ["--suite", "digits-tiny", "--instance-dir", str(sets), "--learners", "tpe1:tpe-constant"]
    argv += ["--fixed", "ssdkd", "--hyper", "tpe1:n_startup_trials=1", "--train-seeds", "0-1", "--total-steps", "2"]
    argv += ["--eval-blocks", "1", "--jobs", "2", "--device", "cpu", "--out", str(out)]
    assert load_script("study").main(argv) == 0
    summaries = [out / f"tpe1-s{s}" / "summary.json" for s in (0, 1)]
    stamps = [p.stat().st_mtime_ns for p in summaries]
    trained = json.loads(summaries[0].read_text())
    assert trained["agent"] == "tpe-constant" and trained["hyper"]["n_startup_trials"] == 1  # the label's setting
    compared = json.loads((out / "compare" / "compare.json").read_text())
    assert compared["instances"] == {"suite": "digits-tiny", "split": "test"}
    assert set(compared["results"]) == {"ssdkd", "tpe1"}
    assert compared["results"]["tpe1"]["train_seeds"] == 2
    assert json.loads((out / "study.json").read_text())["learners"] == {"tpe1": "tpe-constant"}
    with pytest.raises(UserError, match="--resume"):
        load_script("study").main(argv)
    assert load_script("study").main([*argv, "--resume"]) == 0
    assert [p.stat().st_mtime_ns for p in summaries] == stamps  # finished runs are kept, not trained again
    for learners, message in (("a:ppo,a:a2c", "twice"), ("a=b:ppo", "LABEL:NAME"), ("x:ssdkd", "learn")):
        with pytest.raises(UserError, match=message):
            load_script("study").main([*argv[:5], learners, "--out", str(tmp_path / "bad")])
