"""Building environments for agent runs, playing evaluation episodes, and the statistics of the
evaluation protocol: confidence intervals and paired tests over evaluation seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import gymnasium as gym
import numpy as np
from scipy.stats import t as student_t

from ssdkd_env.engine import make_config
from ssdkd_env.engine.config import parse_override, read_config_file
from ssdkd_env.env.config import EnvConfig
from ssdkd_env.env.distillation_env import DistillationEnv
from ssdkd_env.env.instances import SUITES, Split
from ssdkd_env.env.regimes import REGIMES, default_regime
from ssdkd_env.errors import UserError

# Episode length and training budget of agent runs per task (digits: minutes on 2 CPU cores).
EPISODE_DEFAULTS: dict[str, dict[str, int]] = {
    "digits": {"rounds": 30, "total_steps": 600},
    "mnist": {"rounds": 40, "total_steps": 800},
    "cifar10-cpu": {"rounds": 4, "total_steps": 16},  # about 25 minutes on 2 CPU cores, evaluation included
    "shapes": {"rounds": 20, "total_steps": 100},
    "camvid-cpu": {"rounds": 4, "total_steps": 16},
    "nyuv2-cpu": {"rounds": 4, "total_steps": 16},
}
FALLBACK_EPISODE_DEFAULTS = {"rounds": 60, "total_steps": 2000}


def episode_defaults(task: str) -> dict[str, int]:
    return EPISODE_DEFAULTS.get(task, FALLBACK_EPISODE_DEFAULTS)


def default_total_steps(task: str, regime: str | None) -> int:
    """The learning budget of an agent run: the regime's, else the task's."""
    steps = REGIMES.get(regime or default_regime(task)).total_steps
    return steps if steps is not None else episode_defaults(task)["total_steps"]


class Policy(Protocol):
    def act(self, obs: np.ndarray, deterministic: bool = True) -> Any: ...


def make_env_config(
    task: str,
    action_mode: str,
    *,
    rounds: int | None = None,
    regime: str | None = None,
    config_file: Path | None = None,
    engine_overrides: dict[str, Any] | None = None,
    teacher: str | None = None,
    data_root: str | None = None,
    download: bool = False,
    device: str = "auto",
    suite: str | None = None,
    instance_set: Split = "train",
    instance_dir: str | None = None,
) -> EnvConfig:
    """The environment configuration of an agent run: a file, or the task's defaults under ``regime``
    (default: the task's, :func:`~ssdkd_env.env.regimes.default_regime`); then overrides.

    With ``suite``, episodes start from the instances of its ``instance_set`` split: the suite fixes
    the task, the run's configuration and the episode settings, so ``rounds``, ``regime``,
    ``config_file`` and ``engine_overrides`` are refused."""
    if suite is not None:
        return suite_env_config(
            suite,
            instance_set,
            action_mode,
            instance_dir,
            teacher,
            data_root,
            download,
            device,
            refused={"--rounds": rounds, "--regime": regime, "--config": config_file, "--set": engine_overrides},
        )
    chosen = REGIMES.get(regime or default_regime(task))
    if config_file is not None:
        data = read_config_file(config_file)
        engine = data.get("engine") or {}
        data["engine"] = {**engine, "task": task} if isinstance(engine, dict) else engine
        config = EnvConfig.from_dict(data)
    else:
        engine = make_config(task, rounds=episode_defaults(task)["rounds"])
        config = EnvConfig(engine=engine).refined(**chosen.env, **chosen.engine)
    changes: dict[str, Any] = dict(engine_overrides or {})
    if rounds is not None:
        changes["rounds"] = rounds
    return config.refined(
        teacher=teacher or config.teacher,
        data_root=data_root or config.data_root,
        download=download or config.download,
        device=device,
        action_mode=action_mode,
        **changes,
    )


def suite_env_config(
    suite: str,
    instance_set: Split,
    action_mode: str,
    instance_dir: str | None,
    teacher: str | None,
    data_root: str | None,
    download: bool,
    device: str,
    refused: dict[str, Any],
) -> EnvConfig:
    """The configuration of episodes that start from ``suite``'s ``instance_set`` split (the flags in
    ``refused`` that are set would change what the suite fixes: a one-line error names them)."""
    definition = SUITES.get(suite)
    given = [flag for flag, value in refused.items() if value]
    if given:
        raise UserError(
            f"--suite {suite} fixes the task, the run's configuration and the episode length; drop {', '.join(given)}"
        )
    return EnvConfig(
        engine=definition.engine_config(),
        teacher=teacher,
        data_root=data_root,
        download=download,
        device=device,
        action_mode=cast(Any, action_mode),
        suite=suite,
        instance_set=instance_set,
        instance_dir=instance_dir,
    ).refined(**definition.env)


def env_config_from_cli(task: str, action_mode: str, args: Any, instance_set: Split | None = None) -> EnvConfig:
    """:func:`make_env_config` from the environment flags the agent scripts share (``--rounds --regime
    --config --set --teacher --data-root --download --device``, and ``--suite --instance-set
    --instance-dir`` where the script has them; ``instance_set`` overrides ``--instance-set``)."""
    suite = getattr(args, "suite", None)
    return make_env_config(
        task,
        action_mode,
        rounds=args.rounds,
        regime=args.regime,
        config_file=args.config,
        engine_overrides=dict(parse_override(s) for s in args.set),
        teacher=args.teacher,
        data_root=args.data_root,
        download=args.download,
        device=args.device,
        suite=suite,
        instance_set=instance_set or getattr(args, "instance_set", None) or "train",
        instance_dir=getattr(args, "instance_dir", None),
    )


def run_episode(
    env: gym.Env, policy: Policy, seed: int, on_round: Callable[[], object] | None = None
) -> dict[str, Any]:
    """Play one episode with ``policy`` (deterministic): per-round curves, final measures and the
    mean of the observations the policy acted on.
    ``on_round`` is called after every round (a progress bar's update). With an instance set, seed
    ``s`` plays instance ``s mod n``, so consecutive evaluation seeds cover every instance evenly."""
    base = env.unwrapped
    assert isinstance(base, DistillationEnv)
    options = None if base.instances is None else {"instance": seed % len(base.instances)}
    obs, start_info = env.reset(seed=seed, options=options)
    done, total, rounds = False, 0.0, []
    info: dict[str, Any] = {}
    seen = np.zeros_like(np.asarray(obs, dtype=np.float64))
    while not done:
        seen += np.asarray(obs, dtype=np.float64)
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, deterministic=True))
        total += float(reward)
        done = terminated or truncated
        if on_round is not None:
            on_round()
        rounds.append(
            {
                "round": info.get("round"),
                "test_acc": info.get("test_acc"),
                "probe_agreement": info.get("probe_agreement"),
            }
        )
    assert base.engine is not None
    return {
        "seed": seed,
        **({"instance": start_info["instance"]} if "instance" in start_info else {}),
        "return": total,
        "student_acc": base.engine.test_accuracy(),
        "probe_agreement": info.get("probe_agreement"),
        "diverged": bool(info.get("diverged")),
        "synthetic_samples": base.engine.synthetic_samples,
        "rounds": rounds,
        # the mean of the observations the policy acted on (the state-dependence ablation replays it)
        "mean_observation": (seen / max(len(rounds), 1)).tolist(),
    }


METRICS = ("student_acc", "probe_agreement", "return")
POWER = 0.8


def confidence(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation, 95% CI of the mean (Student t) and count of ``values``."""
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = student_t.ppf(0.975, n - 1) * std / math.sqrt(n) if n > 1 else 0.0
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def paired_test(differences: list[float]) -> dict[str, float]:
    """One-sample t-test of the mean of ``differences`` against 0, with its 95% CI and the smallest
    difference it detects with 80% power (two-sided, alpha 0.05) at the observed spread."""
    stats = confidence(differences)
    n, std = len(differences), stats["std"]
    if n < 2:
        return {**stats, "p_value": float("nan"), "detectable": float("nan")}
    se = std / math.sqrt(n)
    t_value = stats["mean"] / se if se > 0 else math.copysign(math.inf, stats["mean"]) if stats["mean"] else 0.0
    p_value = float(2 * student_t.sf(abs(t_value), n - 1))
    detectable = (student_t.ppf(0.975, n - 1) + student_t.ppf(POWER, n - 1)) * se
    return {**stats, "p_value": p_value, "detectable": float(detectable)}


def paired_against(episodes: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric, :func:`paired_test` of (policy - reference) on the same evaluation seeds.

    Episodes are records of :func:`run_episode` with a ``train_seed``. When both were trained over
    several seeds (a learner against a learner), training seed t of the policy is paired with
    training seed t of the reference; otherwise each episode is paired with the reference's mean
    over its training seeds on the same evaluation seed (one value for a fixed rule)."""
    matched = len({e["train_seed"] for e in episodes}) > 1 and len({e["train_seed"] for e in reference}) > 1
    out: dict[str, Any] = {}
    for metric in METRICS:
        runs = {(int(e["train_seed"]), int(e["seed"])): float(e[metric]) for e in reference if e[metric] is not None}
        per_seed: dict[int, list[float]] = {}
        for (_, seed), value in runs.items():
            per_seed.setdefault(seed, []).append(value)
        mean_over_runs = {seed: statistics.fmean(values) for seed, values in per_seed.items()}
        by_seed: dict[int, list[float]] = {}
        for e in episodes:
            key = (int(e["train_seed"]), int(e["seed"]))
            ref = runs.get(key) if matched else mean_over_runs.get(key[1])
            if e[metric] is not None and ref is not None:
                by_seed.setdefault(key[0], []).append(float(e[metric]) - ref)
        if not by_seed:
            continue
        if len(by_seed) > 1:
            out[metric] = {**paired_test([statistics.fmean(v) for v in by_seed.values()]), "over": "training seeds"}
        else:
            out[metric] = {**paired_test(next(iter(by_seed.values()))), "over": "evaluation seeds"}
    return out
