"""The agent registry: names -> agent classes (a :class:`ssdkd_env.registry.Registry`)."""

from __future__ import annotations

import difflib
import json
import math
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv

from agents.base import Agent
from agents.common.io import read_meta
from ssdkd_env.errors import UserError
from ssdkd_env.registry import Registry

AGENTS: Registry[type[Agent]] = Registry("agent")

A = TypeVar("A", bound=type[Agent])


def register_agent(cls: A) -> A:
    """Class decorator: make ``cls`` available as ``make_agent(cls.name, ...)``."""
    AGENTS.add(cls.name, cls)
    return cls


def agent_class(name: str) -> type[Agent]:
    """The class registered as ``name``."""
    return AGENTS.get(name)


def make_agent(name: str, env: gym.Env | VecEnv, seed: int = 0, device: str = "cpu", **hyper: Any) -> Agent:
    """Build the agent ``name`` on ``env``."""
    return agent_class(name)(env, seed=seed, device=device, **hyper)


def load_agent(path: Path, env: gym.Env | VecEnv, device: str = "cpu") -> Agent:
    """Load any saved agent (its name is read from the checkpoint)."""
    return agent_class(read_meta(Path(path)).get("agent", "")).load(path, env, device)


def list_agents() -> list[str]:
    """Registered agent names, sorted."""
    return sorted(AGENTS)


def preferred_action_mode(name: str) -> str:
    """The action form the environment should be built with for agent ``name``."""
    return agent_class(name).action_modes[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# The JSON values (what --hyper KEY=VALUE gives) each annotated type takes, and how to name them.
_KINDS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    float: (_is_number, "a number"),
    str: (lambda v: isinstance(v, str), "a string"),
    type(None): (lambda v: v is None, "null"),
    dict: (lambda v: isinstance(v, dict), "a JSON object"),
    tuple: (lambda v: isinstance(v, list), "a JSON list"),
    list: (lambda v: isinstance(v, list), "a JSON list"),
}
_NUMERIC = ("a number", "an integer")
_POSITIVE = (lambda v: v > 0, "> 0")
_AT_LEAST_0 = (lambda v: v >= 0, ">= 0")
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
# Ranges of the numbers the known hyper-parameters take (SB3's and the built-in agents').
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(("learning_rate", "lr", "clip_range", "clip_range_vf", "max_grad_norm", "rms_prop_eps"), _POSITIVE),
    **dict.fromkeys(("initial_std", "target_kl"), _POSITIVE),
    **dict.fromkeys(("gamma", "gae_lambda", "tau"), _UNIT),
    **dict.fromkeys(("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"), _UNIT),
    **dict.fromkeys(
        ("n_steps", "batch_size", "n_epochs", "buffer_size", "train_freq", "target_update_interval"), _AT_LEAST_1
    ),
    **dict.fromkeys(("stats_window_size", "policy_delay", "hidden", "episodes_per_candidate"), _AT_LEAST_1),
    **dict.fromkeys(("learning_starts", "ent_coef", "vf_coef", "exploration", "verbose"), _AT_LEAST_0),
    **dict.fromkeys(("target_policy_noise", "target_noise_clip"), _AT_LEAST_0),
}


def _expected(key: str, annotation: Any) -> list[tuple[Callable[[Any], bool], str]]:
    """What a parameter annotated ``annotation`` takes, as (test, description) pairs: one per JSON
    kind of the annotation (none for classes and functions), numbers limited to ``key``'s range."""
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    kinds = [kind for kind in (_KINDS.get(get_origin(m) or m) for m in members) if kind is not None]
    limit = RANGES.get(key)
    if limit is None:
        return kinds
    in_range, span = limit

    def bounded(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
        return lambda v: test(v) and in_range(v)

    return [(bounded(test), f"{text} {span}") if text in _NUMERIC else (test, text) for test, text in kinds]


def check_hyper(name: str, hyper: dict[str, Any]) -> None:
    """Refuse, in one line naming the parameter, what it takes and the fix, a hyper-parameter that
    agent ``name`` does not take, or a value of the wrong type or out of range.

    Types come from :meth:`Agent.hyper_types` (SB3's constructor annotations; the built-in agents'
    defaults), ranges from :data:`RANGES`; ``true``/``false`` are not numbers. Values are JSON
    values, as ``--hyper KEY=VALUE`` gives them: of a parameter that takes a class or a function
    besides a value (SB3's ``rollout_buffer_class``, ``action_noise``), only the value can be given.
    """
    cls = agent_class(name)
    annotations = cls.hyper_types()
    for key, value in hyper.items():
        if key not in annotations:
            close = difflib.get_close_matches(key, annotations, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(
                f"agent '{name}' has no hyper-parameter '{key}'; {hint}valid: {', '.join(sorted(annotations))}"
            )
        if annotations[key] is Any:  # checked by the agent itself
            continue
        expected = _expected(key, annotations[key])
        if not any(test(value) for test, _ in expected):
            default = cls.defaults.get(key)
            fix = (
                f"e.g. {key}={json.dumps(default)}, the default"
                if default is not None
                else "leave it out for the default"
            )
            what = " or ".join(text for _, text in expected)
            raise UserError(f"hyper-parameter {key}={json.dumps(value)} of agent '{name}' must be {what}; {fix}")
