"""Named environment variants ("regimes"): how long an episode is, what it costs and what is scarce.

A regime is a set of engine and environment settings applied over a task's defaults, so the same
regime runs on every task with 10 classes and a policy trained in it on one task can be evaluated
on another (the observation is the same size and every element lies in fixed bounds). Choose one
with ``--regime`` in ``train/run_agent.py`` and ``train/compare.py``; ``full`` keeps the task's own
run, cut to the episode length of :data:`EPISODE_DEFAULTS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssdkd_env.registry import Registry


@dataclass(frozen=True)
class Regime:
    """Engine settings (dotted keys), environment settings (``EnvConfig`` fields) and the default
    learning budget in environment steps (``None``: the task's)."""

    description: str
    engine: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    total_steps: int | None = None


REGIMES: Registry[Regime] = Registry("regime")

REGIMES.add("full", Regime("the task's own run, cut to the task's agent episode length (EPISODE_DEFAULTS)"))

# Chosen on digits (docs/notebook/2026-12-02.md, "A regime where decisions matter"): in 10 rounds of 25 KD steps on
# 64 new images a round, random actions end about 15 points of student accuracy below SSD-KD's rule,
# and an episode costs seconds. The compute cost makes the synthetic budget a real trade-off.
REGIMES.add(
    "budget",
    Regime(
        "a tight budget: 10 rounds of 25 KD steps, 64 new images a round into a 512-image memory, a 200-image probe; "
        "every synthesised image costs 5e-5 of reward",
        engine={
            "rounds": 10,
            "kd_steps": 25,
            "action.synth_budget": 64,
            "buffer_size": 512,
            "probe_size": 200,
            "probe_rounds": 5,
            "eval_every": 0,
        },
        env={"compute_cost": 5e-5},
        total_steps=600,
    ),
)

# The regime a task's agent runs use when --regime is not given.
DEFAULT_REGIMES: dict[str, str] = {"digits": "budget"}


def default_regime(task: str) -> str:
    return DEFAULT_REGIMES.get(task, "full")
