"""Workers that die: a killed environment or evaluation worker ends the run with one line naming it."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, nested, saved_random_teacher
from scripts import ROOT, assert_one_line_error, run_script

from agents.common.evaluation import EvalJob, EvalResult, evaluate_jobs
from ssdkd_env.engine import make_config
from ssdkd_env.env import EnvConfig
from ssdkd_env.env.vector import GroupedVecEnv, ProcessWorker, RayWorker, connect_ray, make_vec_env
from ssdkd_env.errors import UserError, WorkerDied

pytestmark = pytest.mark.usefixtures("one_thread")

# Runs a train/ script exactly as `python SCRIPT ARGS` would, except that after the KILL_STEP-th step of
# its vector of environments the parent sends SIGKILL to environment worker WORKER (and prints its pid).
# Usage: python -c KILL_WORKER_DRIVER KILL_STEP WORKER SCRIPT ARGS...
KILL_WORKER_DRIVER = """
import os, runpy, signal, sys

from ssdkd_env.env.vector import GroupedVecEnv

kill_step, worker, script, *argv = sys.argv[1:]
original = GroupedVecEnv.step_wait
calls = 0


def step_wait(self):
    global calls
    result = original(self)
    calls += 1
    if calls == int(kill_step):
        pid = self.workers[int(worker)].process.pid
        print(f"killed worker pid {pid}", flush=True)
        os.kill(pid, signal.SIGKILL)
    return result


GroupedVecEnv.step_wait = step_wait
sys.argv, sys.path[0] = [script, *argv], os.path.dirname(script)
runpy.run_path(script, run_name="__main__")
"""


def tiny_config(teacher: Path, rounds: int = 2) -> EnvConfig:
    return EnvConfig(engine=make_config("digits", **{**TINY, "rounds": rounds}), teacher=str(teacher), device="cpu")


def step_after_a_death(vec: GroupedVecEnv) -> WorkerDied:
    """The error of the vector's next step (its first worker was just killed), after which it closes quietly."""
    with pytest.raises(WorkerDied) as died:
        vec.step(np.zeros((vec.num_envs, 7), dtype=np.float32))
    vec.close()
    vec.close()  # closing twice is harmless too
    return died.value


def test_a_killed_process_worker_is_one_user_error_naming_it_and_the_others_stop(tmp_path: Path) -> None:
    vec = make_vec_env(tiny_config(saved_random_teacher(tmp_path / "t.pt")), 2, "process", n_workers=2, seed=0)
    vec.reset()
    vec.step(np.zeros((2, 7), dtype=np.float32))
    victim, other = vec.workers[1], vec.workers[0]
    assert isinstance(victim, ProcessWorker) and isinstance(other, ProcessWorker)
    os.kill(victim.process.pid, signal.SIGKILL)
    error = step_after_a_death(vec)
    assert isinstance(error, UserError)
    message = str(error)
    assert f"environment worker 1 of 2 (pid {victim.process.pid}) was killed by SIGKILL" in message
    assert "checkpoint is kept" in message and "--resume" in message and "\n" not in message
    assert not other.process.is_alive() and other.process.exitcode is not None  # stopped, not orphaned


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_a_dead_ray_actor_is_one_user_error_naming_it(tmp_path: Path) -> None:
    import ray

    config = tiny_config(saved_random_teacher(tmp_path / "t.pt"))
    connect_ray(None, num_cpus=2)
    try:
        vec = make_vec_env(config, 2, "ray", n_workers=2, seed=0)
        vec.reset()
        victim = vec.workers[1]
        assert isinstance(victim, RayWorker)
        pid = ray.get(victim.actor.pid.remote())
        ray.kill(victim.actor, no_restart=True)
        message = str(step_after_a_death(vec))
    finally:
        ray.shutdown()
    assert f"environment worker 1 of 2 (Ray actor, pid {pid}) died" in message and "--resume" in message


def test_a_killed_evaluation_worker_is_one_user_error_naming_it(tmp_path: Path) -> None:
    config = tiny_config(saved_random_teacher(tmp_path / "t.pt")).to_dict()
    jobs = [EvalJob("ssdkd", "ssdkd", config, (seed,)) for seed in range(8)]
    killed: list[int] = []

    def kill_a_worker(result: EvalResult) -> None:  # after the first job: the pool has jobs left to run
        if not killed:
            victim = next(p for p in mp.active_children() if p.name.startswith("SpawnProcess"))
            killed.append(victim.pid or 0)
            os.kill(killed[0], signal.SIGKILL)

    with pytest.raises(WorkerDied) as died:
        evaluate_jobs(jobs, workers=2, on_done=kill_a_worker)
    assert re.search(rf"evaluation worker [01] of 2 \(pid {killed[0]}\) was killed by SIGKILL", str(died.value))
    assert "--resume" in str(died.value)
    assert not [p for p in mp.active_children() if p.name.startswith("SpawnProcess")]  # the pool stopped the other


@pytest.mark.slow
def test_run_agent_with_a_killed_worker_ends_in_one_line_and_resumes(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"engine": nested({**TINY, "rounds": 2})}))
    out = tmp_path / "run"
    args = f"--agent ppo --task digits --teacher {teacher} --config {env_file} --total-steps 12 --eval-episodes 1"
    args += " --n-envs 2 --transport process --workers 2 --eval-workers 1 --device cpu --no-progress"
    args += f" --hyper n_steps=2 --hyper batch_size=2 --hyper n_epochs=1 --out {out}"
    # killed after the 3rd step of the vector: both environments finished an episode at the 2nd (4 rounds)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_WORKER_DRIVER, "3", "1", str(ROOT / "train" / "run_agent.py"), *args.split()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    pid = re.search(r"killed worker pid (\d+)", killed.stdout)
    assert pid is not None, killed.stdout
    assert_one_line_error(killed, f"environment worker 1 of 2 (pid {pid[1]}) was killed by SIGKILL", "--resume")
    saved = json.loads((out / "checkpoint" / "progress.json").read_text())
    assert saved["num_steps"] == 4 and not (out / "summary.json").exists()

    resumed = run_script("run_agent", *args.split(), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 12 and summary["learning_curve"][:2] == saved["curve"]
