#!/usr/bin/env python
"""Evaluate policies (fixed ones and saved learned ones) over seeds and tabulate them.

    python train/compare.py --agents ssdkd,uniform,random,ppo=runs/agent/digits-ppo-s0/agent --task digits
    python train/compare.py --agents ssdkd,random,ppo=runs/agent/digits-ppo-s{seed}/agent \
        --train-seeds 0-4 --seeds 200000-200009 --jobs 2

Each policy plays one episode per evaluation seed of --seeds (by default five seeds that
run_agent.py never trains on). A learned policy given with ``{seed}`` in its path is loaded once per
training seed of --train-seeds, and every training seed plays the same evaluation seeds.
``LABEL:NAME=PATH`` names a policy's rows (``ppo-rule:ppo=runs/agent/digits-ppo-rule-s{seed}/agent``).

The protocol (Agarwal et al. 2021 and Henderson et al. 2018 on reporting RL results):
- a learner's 95% confidence interval (Student t) is over its training seeds, each scored by its mean
  over the evaluation seeds; a fixed policy's is over the evaluation seeds;
- each policy is compared with ``ssdkd`` (--reference) by a paired test: per evaluation seed the
  difference of the two scores, averaged per training seed, then a one-sample t-test over training
  seeds (over evaluation seeds for a fixed policy); against a learner reference, training seed t is
  paired with its training seed t; the table also gives the smallest difference this test detects
  with 80% power at the observed spread;
- the learning curves of each learner's training runs (their summary.json, beside the saved agent)
  are averaged over training seeds with a 95% band, and the final quarter of training is compared
  with the first (the rise and its confidence interval over training seeds);
- the statistics of Agarwal et al. 2021, with rliable (``pip install -e ".[rl]"``) and 95% CIs
  from a stratified bootstrap of --bootstrap-reps resamples (seeded, so a table reproduces): each
  policy's interquartile mean (IQM: the mean of the middle half of its scores), and its probability
  of improvement over the reference, P(X > Y): per task, the chance that a run of X scores above a
  run of the reference (ties count 1/2), averaged over tasks. A learner's scores are its training
  seeds (runs) x evaluation seeds (tasks), and its bootstrap resamples training seeds per evaluation
  seed. A fixed policy (or a learner given with one training seed) has one run per evaluation seed,
  so, as for its t interval, its evaluation seeds are the runs of a single task and are what the
  bootstrap resamples; against a learner it enters instead as one run over the same evaluation
  seeds, so that P(X > Y) pairs each training seed with the fixed policy on the same evaluation seed
  (two fixed policies are compared over all pairs of evaluation seeds, not seed by seed).

- every learner gets its P(X > Y) of the headline metric against every other policy, with its CI
  (compare.md's last table, compare.json's ``pairwise``), so it is read against every baseline at once;
- ``--mean-observation LABEL`` is the state-dependence ablation: LABEL's policy plays the same
  evaluation seeds again acting on its own mean observation of each seed's episode (its decisions
  with the state taken away), as the row ``LABEL-mean-obs``.

With ``--suite``, the episodes start from the instances of ``--instance-set`` (default: the held-out
``test`` split), seed ``s`` playing instance ``s mod n``.

Writes OUT/compare.csv, OUT/compare.md, OUT/compare.json, OUT/compare.png, OUT/protocol.png (IQM and
probability of improvement, with their CIs) and, with learners, OUT/learning_curves.png.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import t as student_t
from tqdm import tqdm

from agents import preferred_action_mode
from agents.common.evaluation import EvalJob, EvalResult, evaluate_jobs
from agents.registry import AGENTS
from ssdkd_env.common.cli import add_common_flags, apply_scale, apply_suite, make_parser, parse_seeds, run_cli
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.env import EnvConfig, make_env
from ssdkd_env.env.evaluation import METRICS, confidence, env_config_from_cli, paired_against, paired_test
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.reporting.rl_protocol import DEFAULT_REPS, iqm, probability_of_improvement, rliable
from ssdkd_env.tasks import TaskSpec, get_task

SEED_FIELD = "{seed}"
# what a comparison writes in --out (ssdkd_env/common/runfolder.py)
RUN_FILES = ("compare.json", "compare.csv", "compare.md", "compare.png", "protocol.png", "learning_curves.png")
__all__ = ["confidence", "main", "paired_against", "paired_test", "policy_specs", "summarise"]


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument(
        "--agents",
        default="ssdkd,uniform,random",
        help="NAME or [LABEL:]NAME=SAVED_AGENT_PATH, comma-separated; a path with {seed} is read once per "
        "--train-seeds; LABEL names the policy's rows (two runs of one agent, e.g. ppo-rule:ppo=PATH)",
    )
    p.add_argument(
        "--train-seeds", type=parse_seeds, default=[0], metavar="LIST", help="training seeds of {seed} paths"
    )
    p.add_argument("--reference", default="ssdkd", help="the policy every other is paired against")
    p.add_argument(
        "--mean-observation",
        default="",
        metavar="LABELS",
        help="the state-dependence ablation of these policies (comma-separated labels): each plays the same "
        "evaluation seeds again acting on its own mean observation of that seed's episode, as LABEL-mean-obs",
    )
    p.add_argument(
        "--bootstrap-reps",
        type=int,
        default=DEFAULT_REPS,
        metavar="N",
        help="resamples of the stratified bootstrap behind the IQM and probability-of-improvement CIs",
    )
    p.add_argument("--jobs", type=int, default=1, help="evaluations run at once (one process and thread each)")
    add_common_flags(
        p,
        "task",
        "scale",
        "seeds",
        "rounds",
        "regime",
        "suite",
        "instance-set",
        "instance-dir",
        "config",
        "set",
        "teacher",
        "data-root",
        "download",
        "device",
        "out",
        "overwrite",
        "no-progress",
        seeds="200000-200004",
        out=Path("runs/compare_agents"),
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@dataclass
class PolicySpec:
    label: str
    name: str
    paths: dict[int, Path | None]  # training seed -> saved agent (None: a policy that is not loaded)


def policy_specs(text: str, train_seeds: list[int]) -> list[PolicySpec]:
    specs = []
    for item in [s.strip() for s in text.split(",") if s.strip()]:
        head, _, path = item.partition("=")
        label, _, name = head.rpartition(":")  # LABEL:NAME=PATH names the row; without LABEL, the item does
        if name not in AGENTS:
            raise unknown_name("agent", name, AGENTS)
        if not path and AGENTS[name].learns:
            raise UserError(f"'{name}' learns: give its saved policy as {name}=PATH (from run_agent.py)")
        if path and SEED_FIELD in path:
            paths: dict[int, Path | None] = {s: Path(path.replace(SEED_FIELD, str(s))) for s in train_seeds}
        else:
            paths = {0: Path(path) if path else None}
        for p in paths.values():
            if p is not None and not p.exists():
                raise UserError(f"saved agent {p} does not exist")
        specs.append(PolicySpec(label or item, name, paths))
    if not specs:
        raise UserError("--agents needs at least one policy")
    labels = [spec.label for spec in specs]
    if len(set(labels)) < len(labels):
        raise UserError(f"--agents names a policy twice ({', '.join(labels)}); tell them apart as LABEL:NAME=PATH")
    return specs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apply_scale(args)
    apply_suite(args)
    task = get_task(args.task)
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    if args.bootstrap_reps < 1:
        raise UserError("--bootstrap-reps must be at least 1")
    rliable()  # the protocol's library, checked before any evaluation
    seeds: list[int] = args.seeds
    specs = policy_specs(args.agents, args.train_seeds)
    ablated_labels(args.mean_observation, specs)  # checked before the folder is touched
    with RunFolder(args.out, RUN_FILES, overwrite=args.overwrite):
        return compare(args, task, seeds, specs)


def compare(args: argparse.Namespace, task: TaskSpec, seeds: list[int], specs: list[PolicySpec]) -> int:
    """Evaluate every policy of ``specs`` on ``seeds`` and write the tables into ``args.out``."""
    configs: dict[str, EnvConfig] = {}
    jobs: list[EvalJob] = []
    for spec in specs:
        mode = preferred_action_mode(spec.name)
        if mode not in configs:
            configs[mode] = env_config_from_cli(task.name, mode, args)
            make_env(configs[mode], train_teacher=True).close()  # a missing teacher is trained once, here
        for train_seed, path in spec.paths.items():
            jobs.append(EvalJob(spec.label, spec.name, configs[mode].to_dict(), tuple(seeds), path, train_seed))
    bar = tqdm(total=len(jobs) * len(seeds), desc="evaluating", unit="episode", disable=args.no_progress)
    outcomes = evaluate_jobs(
        jobs, args.jobs, on_done=lambda r: bar.update(len(r.episodes)), remedy="run the same command again"
    )
    ablated = ablated_labels(args.mean_observation, specs)
    ablation = mean_observation_jobs(outcomes, ablated)
    bar.total += sum(len(job.seeds) for job in ablation)
    outcomes += evaluate_jobs(
        ablation, args.jobs, on_done=lambda r: bar.update(len(r.episodes)), remedy="run the same command again"
    )
    bar.close()
    results: dict[str, dict[str, Any]] = {}
    train_seeds = {spec.label: len(spec.paths) for spec in specs}
    train_seeds.update({mean_observation_label(label): train_seeds[label] for label in ablated})
    for label, count in train_seeds.items():
        episodes = [e for outcome in outcomes if outcome.job.label == label for e in outcome.episodes]
        results[label] = summarise(episodes, count)
    reference = next((spec.label for spec in specs if spec.label == args.reference), None)
    if reference is not None:
        for label, res in results.items():
            if label != reference:
                res["paired"] = paired_against(res["episodes"], results[reference]["episodes"])
    rl_protocol(results, reference, args.bootstrap_reps)
    pairwise = pairwise_improvement(results, args.bootstrap_reps)
    curves = learning_curves(specs)
    for label, curve in curves.items():
        results[label]["learning"] = curve["rise"]
    for label, res in results.items():
        print(f"{label}: " + ", ".join(f"{m}={res[m]['mean']:.4f}" for m in METRICS if m in res))
    saved = {"task": task.name, "seeds": seeds, "train_seeds": args.train_seeds, "reference": reference}
    if args.suite is not None:
        saved["instances"] = {"suite": args.suite, "split": args.instance_set}
    write_json(args.out / "compare.json", {**saved, "results": results, "pairwise": pairwise})
    write_tables(args.out, results, pairwise)
    plot_protocol(args.out / "protocol.png", results, reference)
    if curves:
        plot_learning_curves(args.out / "learning_curves.png", curves)
    return 0


def ablated_labels(text: str, specs: list[PolicySpec]) -> list[str]:
    """The labels of ``--mean-observation``, each one of ``specs``'."""
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if unknown := [label for label in labels if label not in {spec.label for spec in specs}]:
        raise UserError(f"--mean-observation names no policy of --agents: {', '.join(unknown)}")
    return labels


def mean_observation_label(label: str) -> str:
    return f"{label}-mean-obs"


def mean_observation_jobs(outcomes: list[EvalResult], labels: list[str]) -> list[EvalJob]:
    """The state-dependence ablation of the policies ``labels``: each job of theirs again, the policy
    acting on its mean observation of the same seed's episode in place of the environment's."""
    jobs = []
    for outcome in outcomes:
        if outcome.job.label in labels:
            observations = {int(e["seed"]): e["mean_observation"] for e in outcome.episodes}
            label = mean_observation_label(outcome.job.label)
            jobs.append(dataclasses.replace(outcome.job, label=label, observations=observations, keep_last=False))
    return jobs


def pairwise_improvement(results: dict[str, dict[str, Any]], reps: int) -> dict[str, dict[str, dict[str, float]]]:
    """P(X > Y) of the headline metric, with its 95% stratified bootstrap CI, of every learner X (a
    policy of several training seeds, its mean-observation ablation included) against every other
    policy Y: ``pairwise[X][Y]``. The learner's training seeds are its runs, paired with Y's on the
    same evaluation seeds; a fixed policy counts as one run per evaluation seed. (Rows are learners
    only: each comparison costs seconds of bootstrap, and fixed against fixed is in the main table.)"""
    metric = headline_metric(results)
    matrices = {label: run_task_scores(res["episodes"], metric) for label, res in results.items()}
    present = {label: m for label, m in matrices.items() if m is not None}
    pairwise: dict[str, dict[str, dict[str, float]]] = {}
    for label, x in present.items():
        if x.shape[0] == 1:
            continue
        for other, y in present.items():
            if other != label:
                pairwise.setdefault(label, {})[other] = probability_of_improvement(x, y, reps).to_dict()
    return pairwise


def summarise(episodes: list[dict[str, Any]], train_seeds: int) -> dict[str, Any]:
    """Per metric: a CI over training seeds (each its mean over evaluation seeds) when there are
    several, else over the episodes."""
    out: dict[str, Any] = {"episodes": episodes, "train_seeds": train_seeds}
    for metric in METRICS:
        by_seed: dict[int, list[float]] = {}
        for e in episodes:
            if e[metric] is not None:
                by_seed.setdefault(int(e["train_seed"]), []).append(float(e[metric]))
        if not by_seed:
            continue
        if train_seeds > 1:
            out[metric] = confidence([statistics.fmean(v) for v in by_seed.values()])
        else:
            out[metric] = confidence([v for values in by_seed.values() for v in values])
    return out


def run_task_scores(episodes: list[dict[str, Any]], metric: str) -> np.ndarray | None:
    """``metric`` as a matrix of training seeds x evaluation seeds, or None where a score is missing."""
    values = {(int(e["train_seed"]), int(e["seed"])): e[metric] for e in episodes}
    runs, tasks = sorted({k[0] for k in values}), sorted({k[1] for k in values})
    if not values or any(values.get((r, t)) is None for r in runs for t in tasks):
        return None
    return np.array([[float(values[(r, t)]) for t in tasks] for r in runs])


def as_runs(scores: np.ndarray) -> np.ndarray:
    """A fixed policy's one row of evaluation seeds as runs of a single task; a learner's as it is."""
    return scores.T if scores.shape[0] == 1 else scores


def rl_protocol(results: dict[str, dict[str, Any]], reference: str | None, reps: int) -> None:
    """Add per metric each policy's IQM (``iqm``) and, against ``reference``, its probability of
    improvement (``improvement``), each with a 95% stratified bootstrap CI (see the module docstring)."""
    for metric in METRICS:
        matrices = {label: run_task_scores(res["episodes"], metric) for label, res in results.items()}
        ref = matrices.get(reference) if reference is not None else None
        for label, scores in matrices.items():
            if scores is None:
                continue
            results[label].setdefault("iqm", {})[metric] = iqm(as_runs(scores), reps).to_dict()
            if ref is None or label == reference:
                continue
            x, y = scores, ref
            if (x.shape[0] == 1) == (y.shape[0] == 1):  # both fixed or both learners
                x, y = as_runs(x), as_runs(y)
            poi = probability_of_improvement(x, y, reps).to_dict()
            results[label].setdefault("improvement", {})[metric] = poi


def learning_curves(specs: list[PolicySpec]) -> dict[str, dict[str, Any]]:
    """Each learner's episode returns while training (from the summary.json beside each saved agent),
    and the rise from the first to the last quarter of training, with a CI over training seeds."""
    curves: dict[str, dict[str, Any]] = {}
    for spec in specs:
        runs = []
        for path in spec.paths.values():
            summary = path.parent / "summary.json" if path is not None else None
            if summary is not None and summary.is_file():
                curve = json.loads(summary.read_text()).get("learning_curve") or []
                returns = [float(c["episode_return"]) for c in curve]
                if len(returns) >= 4:
                    runs.append(returns)
        if not runs:
            continue
        length = min(len(r) for r in runs)
        matrix = np.array([r[:length] for r in runs])
        quarter = max(1, length // 4)
        rises = [float(r[-quarter:].mean() - r[:quarter].mean()) for r in matrix]
        curves[spec.label] = {"returns": matrix.tolist(), "rise": confidence(rises)}
    return curves


def plot_learning_curves(path: Path, curves: dict[str, dict[str, Any]]) -> None:
    """Mean episode return over training seeds against the training episode, with a 95% band
    (smoothed over a window of a tenth of the run)."""
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    short = {label: label.split("=")[0] for label in curves}  # "ppo=runs/..." -> "ppo", unless two share it
    for label, curve in curves.items():
        name = short[label] if list(short.values()).count(short[label]) == 1 else label
        matrix = np.array(curve["returns"])
        window = max(1, matrix.shape[1] // 10)
        kernel = np.ones(window) / window
        smooth = np.array([np.convolve(row, kernel, mode="valid") for row in matrix])
        x = np.arange(smooth.shape[1]) + window
        mean = smooth.mean(axis=0)
        n = smooth.shape[0]
        half = student_t.ppf(0.975, n - 1) * smooth.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
        ax.plot(x, mean, label=f"{name} ({n} seeds)")
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    ax.set_xlabel("training episode")
    ax.set_ylabel(f"episode return (moving mean of {window})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def write_tables(
    out: Path, results: dict[str, dict[str, Any]], pairwise: dict[str, dict[str, dict[str, float]]] | None = None
) -> None:
    rows = []
    for label, res in results.items():
        for metric in METRICS:
            if metric in res:
                paired = res.get("paired", {}).get(metric, {})
                central = res.get("iqm", {}).get(metric, {})
                better = res.get("improvement", {}).get(metric, {})
                rows.append(
                    {
                        "policy": label,
                        "metric": metric,
                        **res[metric],
                        "train_seeds": res["train_seeds"],
                        "diff_vs_reference": paired.get("mean"),
                        "diff_ci95_low": paired.get("ci95_low"),
                        "diff_ci95_high": paired.get("ci95_high"),
                        "p_value": paired.get("p_value"),
                        "detectable": paired.get("detectable"),
                        "iqm": central.get("value"),
                        "iqm_ci95_low": central.get("ci95_low"),
                        "iqm_ci95_high": central.get("ci95_high"),
                        "p_improvement": better.get("value"),
                        "p_improvement_ci95_low": better.get("ci95_low"),
                        "p_improvement_ci95_high": better.get("ci95_high"),
                    }
                )
    with open(out / "compare.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["policy"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| policy | metric | training seeds | n | mean | 95% CI | minus reference [95% CI] | p | detectable "
        "| IQM [95% CI] | P(> reference) [95% CI] |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---|---|",
    ]
    for r in rows:
        paired = "—"
        p_value = detectable = "—"
        if r["diff_vs_reference"] is not None:
            paired = f"{r['diff_vs_reference']:+.4f} [{r['diff_ci95_low']:+.4f}, {r['diff_ci95_high']:+.4f}]"
            p_value, detectable = f"{r['p_value']:.3f}", f"{r['detectable']:.4f}"
        lines.append(
            f"| {r['policy']} | {r['metric']} | {r['train_seeds']} | {r['n']} | {r['mean']:.4f} | "
            f"[{r['ci95_low']:.4f}, {r['ci95_high']:.4f}] | {paired} | {p_value} | {detectable} | "
            f"{interval_text(r, 'iqm', '.4f')} | {interval_text(r, 'p_improvement', '.3f')} |"
        )
    rises = {label: res["learning"] for label, res in results.items() if "learning" in res}
    if rises:
        lines += ["", "| learner | return, final quarter minus first quarter of training | 95% CI | seeds |"]
        lines.append("|---|---:|---|---:|")
        for label, rise in rises.items():
            lines.append(
                f"| {label} | {rise['mean']:+.4f} | [{rise['ci95_low']:+.4f}, {rise['ci95_high']:+.4f}] | {rise['n']} |"
            )
    if pairwise:
        others = list(results)
        lines += ["", f"P(row > column), {headline_metric(results)} [95% stratified bootstrap CI]:", ""]
        lines.append("| policy | " + " | ".join(others) + " |")
        lines.append("|---|" + "---|" * len(others))
        for label, row in pairwise.items():
            cells = [
                "—" if o == label or o not in row else f"{row[o]['value']:.2f} [{row[o]['ci95_low']:.2f}, "
                f"{row[o]['ci95_high']:.2f}]"
                for o in others
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    metric = headline_metric(results)
    labels = [label for label in results if metric in results[label]]
    means = [results[label][metric]["mean"] for label in labels]
    errors = [results[label][metric]["mean"] - results[label][metric]["ci95_low"] for label in labels]
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    ax.bar(range(len(labels)), means, yerr=errors, capsize=4)
    ax.set_xticks(range(len(labels)), [label.split("=")[0] for label in labels], rotation=20)
    ax.set_ylabel(f"{metric} (mean, 95% CI)")
    low = min(m - e for m, e in zip(means, errors, strict=True)) if means else 0.0
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    fig.tight_layout()
    fig.savefig(out / "compare.png")


def headline_metric(results: dict[str, dict[str, Any]]) -> str:
    """The metric the figures show: student accuracy where it was measured, else probe agreement."""
    return "student_acc" if any("student_acc" in r for r in results.values()) else "probe_agreement"


def interval_text(row: dict[str, Any], key: str, spec: str) -> str:
    """``value [low, high]`` of a table row's ``key``, or a dash where it was not computed."""
    if row[key] is None:
        return "—"
    return f"{row[key]:{spec}} [{row[key + '_ci95_low']:{spec}}, {row[key + '_ci95_high']:{spec}}]"


def plot_protocol(path: Path, results: dict[str, dict[str, Any]], reference: str | None) -> None:
    """The headline metric's IQM per policy and, beside it, each policy's probability of improvement
    over the reference, with their 95% stratified bootstrap CIs."""
    metric = headline_metric(results)
    panels = [("iqm", f"{metric} IQM (95% CI)"), ("improvement", f"P({metric} > {reference or 'reference'}) (95% CI)")]
    fig = Figure(figsize=(9.6, 4.0), dpi=110)
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        shown = {label: res[key][metric] for label, res in results.items() if metric in res.get(key, {})}
        values = [s["value"] for s in shown.values()]
        # a percentile interval may, rarely, leave out its point estimate: no negative bar then
        errors = [
            [max(0.0, s["value"] - s["ci95_low"]) for s in shown.values()],
            [max(0.0, s["ci95_high"] - s["value"]) for s in shown.values()],
        ]
        ax.errorbar(values, range(len(shown)), xerr=errors, fmt="o", capsize=4)
        ax.set_yticks(range(len(shown)), [label.split("=")[0] for label in shown])
        ax.set_ylim(max(len(shown), 1) - 0.5, -0.5)  # the first policy on top
        ax.set_title(title, fontsize=10)
        if key == "improvement":
            ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
            ax.set_xlim(0.0, 1.0)
            if not shown:
                ax.text(0.5, 0.5, "no reference among the policies", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
