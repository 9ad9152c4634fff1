#!/usr/bin/env python
"""A study on an instance suite: every learner trained over many seeds on the suite's train split,
then every learner and fixed baseline evaluated on its held-out test split under the protocol.

    python train/study.py --suite cifar10-16 --data-root DATA --learners ppo,tpe-constant,tpe-schedule \
        --train-seeds 0-9 --total-steps 400 --jobs 2 --out OUT
    python train/study.py --suite cifar10-16 --data-root DATA ... --out OUT --resume

Each (learner, training seed) is one ``train/run_agent.py --suite SUITE`` run in OUT/LEARNER-sSEED,
with the same --total-steps for every learner (equal environment steps), --jobs at a time, each in a
process of one torch thread. Its results stay in its own folder, so a stopped study loses at most
the runs in progress: with --resume a finished run is kept, an interrupted one continues from its
last checkpoint and a missing one starts (--overwrite deletes the study's runs first). Then
``train/compare.py`` plays the --fixed policies and every learner's training seeds on the same
evaluation seeds of the test split (--eval-blocks blocks of one seed per instance) and writes the
protocol's table and figures in OUT/compare.

A learner given as LABEL:NAME runs agent NAME under its own label (folders, rows, ``--hyper``), so one
agent can enter a study twice with different settings. ``--hyper LEARNER:KEY=VALUE`` passes a
hyper-parameter to one learner (repeatable), and
``--mean-observation LEARNERS`` adds their state-dependence ablation to the comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agents.registry import AGENTS
from ssdkd_env.common.cli import add_common_flags, make_parser, parse_seeds, run_cli
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.env.instances import SUITES, load_instance_set
from ssdkd_env.errors import UserError, unknown_name

TRAIN = Path(__file__).resolve().parent
EVAL_SEED_BASE = 200_000  # evaluation seeds: never a training, reference or relevance seed


@dataclass(frozen=True)
class StudyArgs:
    """The study, checked: who learns, on which seeds, for how long, and what they are compared with."""

    suite: str
    learners: tuple[str, ...]  # labels: each names its runs, rows and --hyper settings
    fixed: tuple[str, ...]
    train_seeds: tuple[int, ...]
    total_steps: int
    eval_blocks: int
    hyper: dict[str, tuple[str, ...]]
    jobs: int
    ablated: tuple[str, ...] = ()
    agent_of: dict[str, str] = field(default_factory=dict)  # label -> agent name, where they differ

    def agent(self, learner: str) -> str:
        """The agent a learner's label stands for."""
        return self.agent_of.get(learner, learner)


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--suite", required=True, help=f"instance suite: one of {', '.join(SUITES)}")
    p.add_argument(
        "--learners",
        default="ppo,tpe-constant,tpe-schedule",
        help="agents that learn, comma-separated: NAME or LABEL:NAME (two settings of one agent, e.g. "
        "ppo-uniform:ppo with --hyper ppo-uniform:start_at_uniform=true); runs and rows go by label",
    )
    p.add_argument("--fixed", default="ssdkd,uniform,random", help="fixed baselines, comma-separated")
    p.add_argument("--train-seeds", type=parse_seeds, default=list(range(10)), metavar="LIST", help="training seeds")
    p.add_argument("--total-steps", type=int, default=400, help="environment steps of each learner's training")
    p.add_argument("--eval-blocks", type=int, default=4, help="evaluation seeds per test instance")
    p.add_argument(
        "--mean-observation",
        default="",
        metavar="LEARNERS",
        help="learners whose state dependence is measured: compare.py --mean-observation (comma-separated)",
    )
    p.add_argument("--hyper", action="append", default=[], metavar="LEARNER:KEY=VALUE", help="one learner's hyper")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one process and torch thread each)")
    add_common_flags(
        p, "instance-dir", "teacher", "data-root", "device", "out", "resume", "overwrite", "no-progress"
    )
    p.set_defaults(out=Path("runs/study"))
    return p


def checked(args: argparse.Namespace) -> StudyArgs:
    SUITES.get(args.suite)
    agent_of: dict[str, str] = {}
    for item in (n.strip() for n in args.learners.split(",") if n.strip()):
        label, colon, agent = item.rpartition(":")
        if colon and (not label or not agent or any(c in label for c in ":=/{}")):
            raise UserError(f"--learners takes NAME or LABEL:NAME, got '{item}'")
        if (label or agent) in agent_of:
            raise UserError(f"--learners names '{label or agent}' twice; give each setting its own label")
        agent_of[label or agent] = agent
    learners = tuple(agent_of)
    fixed = tuple(n.strip() for n in args.fixed.split(",") if n.strip())
    for name in (*agent_of.values(), *fixed):
        if name not in AGENTS:
            raise unknown_name("agent", name, AGENTS)
    if wrong := [n for n in learners if not AGENTS[agent_of[n]].learns]:
        raise UserError(f"--learners takes agents that learn; {', '.join(wrong)} do not (give them in --fixed)")
    if wrong := [n for n in fixed if AGENTS[n].learns]:
        raise UserError(f"--fixed takes fixed policies; {', '.join(wrong)} learn (give them in --learners)")
    if args.total_steps < 1 or args.eval_blocks < 1 or args.jobs < 1:
        raise UserError("--total-steps, --eval-blocks and --jobs must be at least 1")
    ablated = tuple(n.strip() for n in args.mean_observation.split(",") if n.strip())
    if wrong := [n for n in ablated if n not in learners]:
        raise UserError(f"--mean-observation takes learners of --learners; not {', '.join(wrong)}")
    hyper: dict[str, list[str]] = {}
    for item in args.hyper:
        learner, colon, setting = item.partition(":")
        if not colon or learner not in learners or "=" not in setting:
            raise UserError(f"--hyper takes LEARNER:KEY=VALUE for a learner of --learners, got '{item}'")
        hyper.setdefault(learner, []).append(setting)
    return StudyArgs(
        args.suite,
        learners,
        fixed,
        tuple(args.train_seeds),
        args.total_steps,
        args.eval_blocks,
        {k: tuple(v) for k, v in hyper.items()},
        args.jobs,
        ablated,
        {label: agent for label, agent in agent_of.items() if label != agent},
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    study = checked(args)
    with RunFolder(args.out, study_files(study), resume=args.resume, overwrite=args.overwrite):
        return run_study(study, args)


def study_files(study: StudyArgs) -> list[str]:
    """What a study writes in its folder: one folder and log per run, the comparison and study.json."""
    runs = [f"{learner}-s{seed}" for learner in study.learners for seed in study.train_seeds]
    return ["study.json", "compare", *runs, *(f"{run}.log" for run in runs)]


def run_study(study: StudyArgs, args: argparse.Namespace) -> int:
    """Train every (learner, seed) not yet finished in ``args.out``, then compare on the test split."""
    out: Path = args.out
    shared = [
        *(["--instance-dir", args.instance_dir] if args.instance_dir else []),
        *(["--teacher", args.teacher] if args.teacher else []),
        *(["--data-root", args.data_root] if args.data_root else []),
        "--device",
        args.device,
        "--no-progress",
    ]
    test = load_instance_set(study.suite, "test", args.instance_dir)  # a missing set: one line, before any run
    runs = [(learner, seed) for learner in study.learners for seed in study.train_seeds]
    start = time.perf_counter()
    with ThreadPoolExecutor(study.jobs) as pool:
        codes = list(pool.map(lambda run: train_one(study, out, shared, *run), runs))
    failed = [f"{learner}-s{seed}" for (learner, seed), code in zip(runs, codes, strict=True) if code != 0]
    if failed:
        logs = f"{out}/LEARNER-sSEED.log"
        raise UserError(f"training failed for {', '.join(failed)} (their logs: {logs}); rerun with --resume")
    trained = time.perf_counter() - start
    seeds = EVAL_SEED_BASE, EVAL_SEED_BASE + study.eval_blocks * len(test) - 1
    agents = [*study.fixed, *(f"{n}:{study.agent(n)}={out}/{n}-s{{seed}}/agent" for n in study.learners)]
    command = [
        sys.executable,
        str(TRAIN / "compare.py"),
        "--suite",
        study.suite,
        "--instance-set",
        "test",
        "--agents",
        ",".join(agents),
        "--train-seeds",
        ",".join(map(str, study.train_seeds)),
        "--seeds",
        f"{seeds[0]}-{seeds[1]}",
        "--jobs",
        str(study.jobs),
        *(["--mean-observation", ",".join(study.ablated)] if study.ablated else []),
        "--out",
        str(out / "compare"),
        "--overwrite",
        *shared,
    ]
    code = subprocess.call(command, env=one_thread())
    write_json(
        out / "study.json",
        {
            "suite": study.suite,
            "learners": {n: study.agent(n) for n in study.learners},
            "fixed": study.fixed,
            "train_seeds": study.train_seeds,
            "total_steps": study.total_steps,
            "hyper": study.hyper,
            "eval_seeds": list(seeds),
            "training_wall_time_s": round(trained, 1),
            "compare_exit": code,
        },
    )
    return code


def one_thread() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_one(study: StudyArgs, out: Path, shared: list[str], learner: str, seed: int) -> int:
    """Train one learner on one seed in OUT/LEARNER-sSEED: kept when finished, resumed when started."""
    folder = out / f"{learner}-s{seed}"
    if (folder / "summary.json").is_file():
        return 0
    started = (folder / "checkpoint" / "progress.json").is_file()
    command = [sys.executable, str(TRAIN / "run_agent.py"), "--out", str(folder)]
    if started:
        command += ["--resume", "--total-steps", str(study.total_steps), "--eval-episodes", "1", "--no-progress"]
    else:
        command += [
            "--agent",
            study.agent(learner),
            "--suite",
            study.suite,
            "--seed",
            str(seed),
            "--total-steps",
            str(study.total_steps),
            "--eval-episodes",
            "1",
            "--baselines",
            "",
            "--n-envs",
            "1",
            "--eval-workers",
            "1",
            *(arg for setting in study.hyper.get(learner, ()) for arg in ("--hyper", setting)),
            *(["--overwrite"] if folder.exists() else []),
            *shared,
        ]
    folder.mkdir(parents=True, exist_ok=True)
    with open(out / f"{learner}-s{seed}.log", "a") as log:
        return subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=one_thread())


if __name__ == "__main__":
    sys.exit(run_cli(main))
