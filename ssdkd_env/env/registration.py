"""Gymnasium ids: ``gym.make("SSDKD/<task>-<regime>-v0")`` for every task the zoo ships a teacher for.

Each id is a task (:mod:`ssdkd_env.tasks`) under a regime (:mod:`ssdkd_env.env.regimes`), built
the way ``train/run_agent.py --task TASK --regime REGIME`` builds its environment, in the
canonical continuous action form. Only tasks with a shipped teacher get ids, so every id works on
a fresh install; ``SSDKD-v0`` takes any task (``gym.make("SSDKD-v0", task=..., teacher=...)``),
a plugin's (:mod:`ssdkd_env.plugins`) included, and every id takes any method (``method=...``).
Keyword arguments of ``gym.make`` override environment or engine settings, e.g.
``gym.make("SSDKD/digits-budget-v0", device="cpu", rounds=4)``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import register, registry

from ssdkd_env.env.distillation_env import make_env
from ssdkd_env.env.evaluation import make_env_config
from ssdkd_env.env.instances import SUITES, Suite
from ssdkd_env.env.regimes import REGIMES
from ssdkd_env.zoo import zoo_cards

NAMESPACE = "SSDKD"

TINY_DIGITS: dict[str, object] = {
    "rounds": 8,
    "kd_steps": 5,
    "buffer_size": 128,
    "probe_size": 64,
    "probe_rounds": 4,
    "action.synth_budget": 32,
    "distiller.batch_size": 32,
    "meta-generator.nz": 32,
    "meta-generator.ngf": 16,
    "meta-generator.warmup_rounds": 2,
}
"""Engine overrides of ``SSDKD-Digits-Tiny-v0``, a digits run that steps in a fraction of a second."""

SUITES.add(
    "digits-tiny",
    Suite(
        "the tiny digits run of SSDKD-Digits-Tiny-v0: starts after rounds 2 and 4, 4 rounds each; reference "
        "seeds 0-1 (train) and 100 (test); builds in seconds",
        task="digits",
        seeds={"train": (0, 1), "test": (100,)},
        start_rounds=(2, 4),
        budget=4,
        engine=TINY_DIGITS,
    ),
)


def env_id(task: str, regime: str) -> str:
    """The Gymnasium id of ``task`` under ``regime``."""
    return f"{NAMESPACE}/{task}-{regime}-v0"


def make_task_env(task: str, regime: str, **overrides: Any) -> gym.Env:
    """The environment behind :func:`env_id` ``(task, regime)``, with ``overrides`` applied."""
    return make_env(make_env_config(task, "continuous", regime=regime), **overrides)


def task_env_ids() -> dict[str, tuple[str, str]]:
    """Every registered task id, mapped to its (task, regime)."""
    return {env_id(c.task, r): (c.task, r) for c in zoo_cards() for r in REGIMES}


def register_envs() -> None:
    """Register ``SSDKD-v0``, ``SSDKD-Digits-Tiny-v0`` and one id per zoo task and regime (idempotent)."""
    ids: dict[str, dict[str, Any]] = {
        "SSDKD-v0": {},
        "SSDKD-Digits-Tiny-v0": {"task": "digits", "device": "cpu", **TINY_DIGITS},
    }
    for name, kwargs in ids.items():
        if name not in registry:
            register(id=name, entry_point="ssdkd_env.env.distillation_env:make_env", kwargs=kwargs)
    for name, (task, regime) in task_env_ids().items():
        if name not in registry:
            register(
                id=name,
                entry_point="ssdkd_env.env.registration:make_task_env",
                kwargs={"task": task, "regime": regime},
            )
