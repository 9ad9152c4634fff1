"""Evaluation episodes of fixed and saved policies, in this process or in worker processes.

A :class:`EvalJob` is one policy (one training seed of a learner) on a list of evaluation seeds.
:func:`evaluate_jobs` plays a list of them, ``workers`` at a time in spawned processes of one torch
thread each. Every job builds its policy afresh, and each process keeps one environment per
configuration across jobs (an episode depends only on its seed: :func:`run_episode` resets with
it), so an episode's result does not depend on how the jobs are spread over workers.

A worker process that dies (killed, out of memory) ends the evaluation with one line,
:class:`~ssdkd_env.errors.WorkerDied`, naming it; the pool stops the other workers.
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.base import Agent
from agents.registry import AGENTS, make_agent
from ssdkd_env.env import DistillationEnv, EnvConfig, make_env
from ssdkd_env.env.evaluation import run_episode
from ssdkd_env.env.vector import RESUME_HINT, how_it_ended
from ssdkd_env.errors import WorkerDied


@dataclass(frozen=True)
class EvalJob:
    """``label``'s policy (agent ``name``; loaded from ``path`` when it learns) on ``seeds``.

    ``agent_seed`` seeds a fixed policy that draws (``random``) and ``hyper`` configures a fixed one
    (``fixed``'s ``action``); ``keep_last`` asks for the student and memory of the last episode
    (:class:`KeptEpisode`). ``observations`` (per evaluation seed) makes the policy act on that one
    observation in place of the environment's, the state-dependence ablation
    (:class:`ObservationReplaced`)."""

    label: str
    name: str
    config: dict[str, Any]  # EnvConfig.to_dict()
    seeds: tuple[int, ...]
    path: Path | None = None
    train_seed: int = 0
    agent_seed: int = 0
    keep_last: bool = False
    hyper: dict[str, Any] = field(default_factory=dict)
    observations: dict[int, list[float]] | None = None


class ObservationReplaced:
    """``policy`` acting on ``observation`` whatever the environment shows: the same decisions with
    the state taken away (given the episode's mean observation, the policy plays open loop)."""

    def __init__(self, policy: Agent, observation: list[float]) -> None:
        self.policy = policy
        self.observation = np.asarray(observation, dtype=np.float32)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> Any:
        return self.policy.act(self.observation.copy(), deterministic)


@dataclass
class KeptEpisode:
    """The end of an episode: the delivered student and what the memory holds, with the teacher's
    predicted class and confidence per sample."""

    student: torch.nn.Module
    images: torch.Tensor
    classes: torch.Tensor
    confidence: torch.Tensor


@dataclass
class EvalResult:
    job: EvalJob
    episodes: list[dict[str, Any]]
    kept: KeptEpisode | None = field(default=None)


_ENVS: dict[str, gym.Env] = {}  # this process's environments, by configuration


def _env_for(config: dict[str, Any]) -> gym.Env:
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _ENVS:
        _ENVS[key] = make_env(EnvConfig.from_dict(config))
    return _ENVS[key]


def close_envs() -> None:
    """Close the environments this process keeps for evaluation."""
    while _ENVS:
        _ENVS.popitem()[1].close()


def evaluate_job(job: EvalJob) -> EvalResult:
    """Play ``job``'s episodes; each episode record gains its ``train_seed``."""
    env = _env_for(job.config)
    policy: Agent = (
        AGENTS[job.name].load(job.path, env)
        if job.path is not None
        else make_agent(job.name, env, seed=job.agent_seed, **job.hyper)
    )
    episodes = []
    for seed in job.seeds:
        acting = policy if job.observations is None else ObservationReplaced(policy, job.observations[seed])
        episode = run_episode(env, acting, seed)
        episode["train_seed"] = job.train_seed
        episodes.append(episode)
    return EvalResult(job, episodes, _kept(env) if job.keep_last else None)


def _kept(env: gym.Env) -> KeptEpisode | None:
    base = env.unwrapped
    assert isinstance(base, DistillationEnv) and base.engine is not None
    engine = base.engine
    if engine.memory is None:
        return None
    images, outputs = engine.memory.contents()
    return KeptEpisode(
        copy.deepcopy(engine.delivered_student).cpu(),
        images.cpu(),
        engine.kind.predicted_classes(outputs).cpu(),
        engine.kind.confidence(outputs).cpu(),
    )


def _init_worker() -> None:
    torch.set_num_threads(1)


def evaluate_jobs(
    jobs: list[EvalJob],
    workers: int = 1,
    on_done: Callable[[EvalResult], object] | None = None,
    remedy: str = RESUME_HINT,
) -> list[EvalResult]:
    """Results of ``jobs`` in their order; ``workers`` > 1 plays them in that many spawned processes.
    ``on_done`` is called as each job finishes (a progress bar's update); ``remedy`` ends the error
    raised when a worker dies (what the user can do about it)."""
    if workers <= 1:
        results = []
        try:
            for job in jobs:
                results.append(evaluate_job(job))
                if on_done is not None:
                    on_done(results[-1])
        finally:
            close_envs()
        return results
    done: dict[int, EvalResult] = {}
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
        futures = {pool.submit(evaluate_job, job): i for i, job in enumerate(jobs)}
        processes = list(pool._processes.values())  # all started by the submits; named if one dies
        try:
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                if on_done is not None:
                    on_done(done[futures[future]])
        except BrokenProcessPool:
            pool.shutdown()  # the pool has stopped the other workers: wait for them
            raise _worker_died(processes, remedy) from None
    return [done[i] for i in range(len(jobs))]


def _worker_died(processes: Sequence[BaseProcess], remedy: str) -> WorkerDied:
    """The error of a broken pool, naming the worker that died: the only one not stopped by the
    pool's own SIGTERM (all of them when that cannot be told)."""
    ended = [(i, p) for i, p in enumerate(processes) if p.exitcode not in (0, -signal.SIGTERM)]
    if len(ended) == 1:
        i, process = ended[0]
        who = f"evaluation worker {i} of {len(processes)} (pid {process.pid}) {how_it_ended(process.exitcode)}"
    else:
        who = "an evaluation worker (pids " + ", ".join(str(p.pid) for p in processes) + ") ended abruptly"
    return WorkerDied(f"{who}; {remedy}")
