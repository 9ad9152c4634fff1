#!/usr/bin/env python
"""Decision relevance of an instance suite: how far the choice of a constant action moves the final
student accuracy, measured against the seed noise of SSD-KD's rule.

    python train/decision_relevance.py --suite cifar10-16 --data-root DATA --jobs 2 --out OUT
    python train/decision_relevance.py --suite digits --constants 20 --rule-seeds 8 --out OUT

Every policy plays the same kind of score: one evaluation seed's episodes on every instance of
--instance-set (seed ``base + r * n + i`` plays instance ``i`` of the ``n``), averaged. The rule
(``ssdkd``) is scored on --rule-seeds such seed blocks; each of --constants random constant actions
(uniform in the method's canonical Box, drawn from --seed) is scored on the first block, so the
constants share their evaluation randomness. Then

    relevance = std over constants of their scores / std over seed blocks of the rule's scores,

the spread that a choice of action makes, in units of the noise between two runs of the same
policy. The range (best minus worst constant) over the same noise is reported beside it, and the
best constant per instance in hindsight (the most accurate of the constants on each instance) as a
ceiling on what choosing a constant per instance could add over the best single constant, and each
decision's sensitivity: the correlation of the constants' scores with that decision, and its slope in
a least-squares fit of the score on all of them (accuracy per unit of the canonical [-1, 1] box).

``--fix NAME=VALUE`` holds a decision at a value (in its own units, e.g. ``--fix alpha=0 --fix beta=0``
for uniform replay) in every constant, so the measurement asks whether the *other* decisions matter
there; ``--reference`` names the fixed policy whose seed noise is the unit (``uniform`` for that case).

Writes OUT/relevance.json, OUT/relevance.md and OUT/relevance.png (each constant's score, the rule's
scores over seeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from agents.common.evaluation import EvalJob, evaluate_jobs
from ssdkd_env.common.cli import add_common_flags, make_parser, run_cli
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.env import make_env
from ssdkd_env.env.distillation_env import DistillationEnv
from ssdkd_env.env.evaluation import make_env_config
from ssdkd_env.env.instances import SUITES, Split
from ssdkd_env.errors import UserError

RUN_FILES = ("relevance.json", "relevance.md", "relevance.png")
SEED_BASE = 300_000  # evaluation seeds of this measurement: never a training or reference seed
REFERENCES = ("ssdkd", "uniform")


@dataclass(frozen=True)
class RelevanceArgs:
    """What a measurement is made of (the parsed flags, checked)."""

    suite: str
    instance_set: Split
    constants: int
    rule_seeds: int
    seed: int
    jobs: int
    fixed: dict[str, float]  # decisions held at a value in every constant
    reference: str  # the fixed policy whose seed noise is the unit


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--suite", required=True, help=f"instance suite: one of {', '.join(SUITES)}")
    p.add_argument("--instance-set", default="test", choices=("train", "test"), help="the split to measure on")
    p.add_argument("--constants", type=int, default=20, help="random constant actions")
    p.add_argument("--rule-seeds", type=int, default=8, help="seed blocks the rule plays (its noise)")
    p.add_argument("--seed", type=int, default=0, help="seed of the constants' draw")
    p.add_argument("--jobs", type=int, default=1, help="episodes played at once (one process and thread each)")
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hold a numeric decision at a value in every constant (its own units; repeatable), e.g. alpha=0",
    )
    p.add_argument("--reference", default="ssdkd", choices=REFERENCES, help="fixed policy whose seed noise is the unit")
    add_common_flags(p, "instance-dir", "teacher", "data-root", "device", "out", "overwrite", "no-progress")
    p.set_defaults(out=Path("runs/decision_relevance"))
    return p


def checked(args: argparse.Namespace) -> RelevanceArgs:
    if args.constants < 2 or args.rule_seeds < 2:
        raise UserError("--constants and --rule-seeds must be at least 2 (each gives a standard deviation)")
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    SUITES.get(args.suite)  # an unknown suite: one line naming the valid ones
    split = cast(Split, args.instance_set)  # argparse's choices are the two splits
    fixed: dict[str, float] = {}
    for item in args.fix:
        name, _, value = item.partition("=")  # no '=': value is '', not a number
        try:
            fixed[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--fix takes NAME=VALUE with a number, got '{item}'") from None
    return RelevanceArgs(
        args.suite, split, args.constants, args.rule_seeds, args.seed, args.jobs, fixed, args.reference
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec = checked(args)
    with RunFolder(args.out, RUN_FILES, overwrite=args.overwrite):
        return measure(spec, args)


def block_seeds(block: int, n: int) -> tuple[int, ...]:
    """The evaluation seeds of seed block ``block``: one per instance, instance ``i`` by seed ``... + i``."""
    return tuple(SEED_BASE + block * n + i for i in range(n))


def measure(spec: RelevanceArgs, args: argparse.Namespace) -> int:
    config = make_env_config(
        SUITES.get(spec.suite).task,
        "continuous",
        teacher=args.teacher,
        data_root=args.data_root,
        device=args.device,
        suite=spec.suite,
        instance_set=spec.instance_set,
        instance_dir=args.instance_dir,
    )
    env = make_env(config)
    base = env.unwrapped
    assert isinstance(base, DistillationEnv) and base.instances is not None
    n, names, dims = len(base.instances), list(base.action_names), len(base.action_names)
    instance_names = [i.name for i in base.instances]
    env.close()
    if unknown := sorted(set(spec.fixed) - set(names)):
        raise UserError(f"--fix: {', '.join(unknown)} not among this method's decisions ({', '.join(names)})")
    actions = np.random.default_rng(spec.seed).uniform(-1.0, 1.0, size=(spec.constants, dims))
    for name, unit in fixed_units(base, spec.fixed).items():
        actions[:, names.index(name)] = unit
    data = config.to_dict()
    jobs = [EvalJob(spec.reference, spec.reference, data, block_seeds(b, n)) for b in range(spec.rule_seeds)]
    jobs += [
        EvalJob(f"constant-{c}", "fixed", data, block_seeds(0, n), hyper={"action": a.tolist()})
        for c, a in enumerate(actions)
    ]
    bar = tqdm(total=len(jobs) * n, desc=f"{spec.suite}/{spec.instance_set}", unit="episode", disable=args.no_progress)
    start = time.perf_counter()
    outcomes = evaluate_jobs(jobs, spec.jobs, on_done=lambda r: bar.update(len(r.episodes)))
    seconds = time.perf_counter() - start
    bar.close()
    rounds = sum(len(e["rounds"]) for o in outcomes for e in o.episodes)
    rule = [statistics.fmean(e["student_acc"] for e in o.episodes) for o in outcomes[: spec.rule_seeds]]
    per_instance = np.array([[e["student_acc"] for e in o.episodes] for o in outcomes[spec.rule_seeds :]])
    scores = per_instance.mean(axis=1)
    noise = statistics.stdev(rule)
    best = int(np.argmax(scores))
    result: dict[str, Any] = {
        "suite": spec.suite,
        "instance_set": spec.instance_set,
        "instances": instance_names,
        "action_names": names,
        "rule": {"scores": rule, "mean": statistics.fmean(rule), "std": noise},  # the --reference policy's
        "constants": [
            {"action": a.tolist(), "score": float(s), "per_instance": p.tolist()}
            for a, s, p in zip(actions, scores, per_instance, strict=True)
        ],
        "constant_std": float(np.std(scores, ddof=1)),
        "constant_range": float(scores.max() - scores.min()),
        "relevance": float(np.std(scores, ddof=1)) / noise if noise > 0 else float("inf"),
        "relevance_range": float(scores.max() - scores.min()) / noise if noise > 0 else float("inf"),
        "reference": spec.reference,
        "fixed": spec.fixed,
        "sensitivity": sensitivity(actions, scores, names, spec.fixed),
        "best_constant": {"index": best, "action": actions[best].tolist(), "score": float(scores[best])},
        # the most accurate constant on each instance, chosen after the fact: a ceiling for per-instance choice
        "best_per_instance_score": float(per_instance.max(axis=0).mean()),
        "episodes": len(jobs) * n,
        "rounds": rounds,
        "wall_time_s": round(seconds, 1),
        "steps_per_s": rounds / seconds,
        "jobs": spec.jobs,
    }
    write_json(args.out / "relevance.json", result)
    write_report(args.out, result)
    print(
        f"{spec.suite}/{spec.instance_set}: relevance {result['relevance']:.2f} (std of {spec.constants} constants "
        f"{result['constant_std']:.4f} / rule's seed std {noise:.4f}); range / noise {result['relevance_range']:.2f}; "
        f"rule {result['rule']['mean']:.4f}, best constant {scores[best]:.4f}, best per instance "
        f"{result['best_per_instance_score']:.4f}; {rounds} rounds in {seconds:.0f} s"
    )
    return 0


def fixed_units(env: DistillationEnv, fixed: dict[str, float]) -> dict[str, float]:
    """The canonical [-1, 1] value of each held decision (the env's own encoding of that value)."""
    if not fixed:
        return {}
    current = env.config.engine.action
    values: dict[str, Any] = {k: int(v) if isinstance(getattr(current, k), int) else v for k, v in fixed.items()}
    try:
        decision = dataclasses.replace(current, **values)
    except (TypeError, ValueError) as error:
        raise UserError(f"--fix: {error}") from None
    unit = env.encode_action(decision)
    return {name: float(unit[list(env.action_names).index(name)]) for name in fixed}


def sensitivity(
    actions: np.ndarray, scores: np.ndarray, names: list[str], fixed: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Per free decision: Pearson r of the constants' scores with it, and its least-squares slope."""
    free = [i for i, name in enumerate(names) if name not in fixed]
    design = np.column_stack([np.ones(len(scores)), actions[:, free]])
    slopes = np.linalg.lstsq(design, scores, rcond=None)[0][1:]
    return {
        names[i]: {"r": float(np.corrcoef(actions[:, i], scores)[0, 1]), "slope": float(slope)}
        for i, slope in zip(free, slopes, strict=True)
    }


def write_report(out: Path, r: dict[str, Any]) -> None:
    lines = [
        f"# Decision relevance of {r['suite']}/{r['instance_set']}",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| `{r['reference']}`'s score, mean over {len(r['rule']['scores'])} seed blocks | {r['rule']['mean']:.4f} |",
        f"| `{r['reference']}`'s seed noise (std) | {r['rule']['std']:.4f} |",
        f"| std of {len(r['constants'])} random constants' scores | {r['constant_std']:.4f} |",
        f"| **relevance** (std of constants / rule's noise) | **{r['relevance']:.2f}** |",
        f"| range of constants / rule's noise | {r['relevance_range']:.2f} |",
        f"| best constant's score | {r['best_constant']['score']:.4f} |",
        f"| best constant per instance, in hindsight | {r['best_per_instance_score']:.4f} |",
        f"| environment steps/s ({r['jobs']} jobs) | {r['steps_per_s']:.2f} |",
        "",
        f"Noise unit: `{r['reference']}`. Held decisions: "
        + (", ".join(f"{k} = {v:g}" for k, v in r["fixed"].items()) or "none")
        + ".",
        "",
        "| decision | r with the score | slope (accuracy per unit) |",
        "|---|---:|---:|",
        *(f"| {k} | {v['r']:+.2f} | {v['slope']:+.4f} |" for k, v in r["sensitivity"].items()),
        "",
        "| constant | " + " | ".join(r["action_names"]) + " | score |",
        "|---:|" + "---:|" * (len(r["action_names"]) + 1),
    ]
    for i, c in enumerate(r["constants"]):
        lines.append(f"| {i} | " + " | ".join(f"{v:+.2f}" for v in c["action"]) + f" | {c['score']:.4f} |")
    (out / "relevance.md").write_text("\n".join(lines) + "\n")
    fig = Figure(figsize=(6.4, 3.6), dpi=110)
    ax = fig.add_subplot()
    constants = sorted(c["score"] for c in r["constants"])
    ax.plot(range(len(constants)), constants, "o", label="random constants (sorted)")
    for s in r["rule"]["scores"]:
        ax.axhline(s, color="tab:red", alpha=0.4, linewidth=1)
    ax.axhline(r["rule"]["mean"], color="tab:red", label="rule, each seed block")
    ax.set_xlabel("constant action")
    ax.set_ylabel("final student accuracy, mean over instances")
    ax.set_title(f"{r['suite']}/{r['instance_set']}: relevance {r['relevance']:.2f}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "relevance.png")


if __name__ == "__main__":
    sys.exit(run_cli(main))
