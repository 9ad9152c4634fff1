"""Tiny configurations and teachers shared by the engine, environment and agent tests."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

from ssdkd_env.checkpoint import card_for, save_model
from ssdkd_env.condensation import CondensedSet
from ssdkd_env.engine import EngineConfig, make_config
from ssdkd_env.models import build_model
from ssdkd_env.tasks import get_task

TINY = {
    "rounds": 3,
    "kd_steps": 3,
    "buffer_size": 64,
    "probe_size": 16,
    "action.synth_budget": 32,
    "distiller.batch_size": 16,
    "meta-generator.nz": 16,
    "meta-generator.ngf": 8,
    "meta-generator.warmup_rounds": 1,
}


def nested(dotted: dict[str, object]) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``: dotted overrides as a config file's mapping."""
    data: dict = {}
    for key, value in dotted.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return data


def run_as_module(code: str, where: str) -> None:
    """Run a page's example as the module it would be in a file (dataclasses look their module up)."""
    name = "doc_example_" + "".join(c if c.isalnum() else "_" for c in where)
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(code, where, "exec"), module.__dict__)
    finally:
        del sys.modules[name]


def tiny_config(method: str = "ssdkd", **overrides: object) -> EngineConfig:
    """A digits run that takes a fraction of a second."""
    return make_config("digits", method, **{**TINY, **overrides})


def random_teacher(arch: str = "cnn_half", seed: int = 0) -> torch.nn.Module:
    """An untrained digits classifier with BatchNorm: enough to exercise every code path."""
    torch.manual_seed(seed)
    task = get_task("digits")
    model = build_model(arch, task.num_classes, task.input_shape[0])
    model.train()
    with torch.no_grad():  # give the BN layers non-trivial running statistics
        for _ in range(3):
            model(torch.randn(64, *task.input_shape))
    return model.eval()


def saved_random_teacher(path: Path, arch: str = "cnn_half") -> Path:
    task = get_task("digits")
    save_model(path, random_teacher(arch), card_for(task, arch, "teacher", 0.5))
    return path


# Runs a train/ script exactly as `python SCRIPT ARGS` would, except that the process sends itself
# SIGKILL inside the KILL_ROUND-th engine round it runs: after the round's work, before it is logged
# or checkpointed. A deterministic kill point for the resume tests.
# Usage: python -c KILL_DRIVER KILL_ROUND SCRIPT ARGS...
KILL_DRIVER = """
import os, runpy, signal, sys

from ssdkd_env.engine.engine import DistillationEngine

kill_round, script, *argv = sys.argv[1:]
original = DistillationEngine.run_round
calls = 0


def run_round(self, *args, **kwargs):
    global calls
    metrics = original(self, *args, **kwargs)
    calls += 1
    if calls == int(kill_round):
        os.kill(os.getpid(), signal.SIGKILL)
    return metrics


DistillationEngine.run_round = run_round
sys.argv, sys.path[0] = [script, *argv], os.path.dirname(script)
runpy.run_path(script, run_name="__main__")
"""


def random_condensed(path: Path, task: str = "digits", per_class: int = 1, shape: tuple[int, ...] = (1, 8, 8)) -> Path:
    """A condensed file of random images (normalised range) for ``task``."""
    gen = torch.Generator().manual_seed(5)
    n = 10 * per_class
    images = torch.randn(n, *shape, generator=gen)
    CondensedSet(images, torch.arange(10).repeat(per_class), task, per_class, "random", 0.0).save(path)
    return path


def method_inputs(method: str, tmp_path: Path) -> dict[str, object]:
    """The files a method needs besides the teacher (``csmi``: condensed samples), as config overrides."""
    if make_config("digits", method).memory == "condensed-pool":
        return {"condensed_path": str(random_condensed(tmp_path / "condensed.pt"))}
    return {}
