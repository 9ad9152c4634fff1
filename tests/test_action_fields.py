"""Actions are declared by the components that act on them: every dimension of every method's Box acts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import method_inputs, saved_random_teacher

from ssdkd_env import TINY_DIGITS
from ssdkd_env.engine import methods_with_memory
from ssdkd_env.env import DistillationEnv, make_env
from ssdkd_env.env.spaces import ACTION_NAMES

# a buffer smaller than one round's samples: full after the first round, then 4 slots evicted per round
SETTINGS: dict[str, Any] = {**TINY_DIGITS, "buffer_size": 16, "action.replace_fraction": 0.25, "device": "cpu"}


def build(method: str, tmp_path: Path, **kwargs: Any) -> DistillationEnv:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    overrides = {**SETTINGS, **method_inputs(method, tmp_path), **kwargs}
    return DistillationEnv(task="digits", method=method, teacher=str(teacher), **overrides)


def tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor and number in a (nested) state dict, in a fixed order."""
    if isinstance(value, torch.Tensor):
        yield value.detach().float().reshape(-1)
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from tensors(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from tensors(item)
    elif isinstance(value, int | float):
        yield torch.tensor([float(value)])


def after_rounds(env: DistillationEnv, action: np.ndarray) -> list[torch.Tensor]:
    """The student, the memory and the metrics after two default rounds and a round with ``action``
    (the memory then holds samples of two birth rounds, so the eviction rules differ)."""
    env.reset(seed=0)
    env.step(env.default_action())
    env.step(env.default_action())
    _, _, _, _, info = env.step(action)
    engine = env.engine
    assert engine is not None and engine.memory is not None
    metrics = {k: v for k, v in info.items() if isinstance(v, int | float) and k != "action"}
    return list(tensors([engine.student.state_dict(), engine.memory.state_dict(), metrics]))


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("method", methods_with_memory())
def test_every_action_dimension_of_every_method_changes_the_round(method: str, tmp_path: Path) -> None:
    env = build(method, tmp_path)
    default = env.default_action()
    assert env.action_space.shape == default.shape == (len(env.action_fields),)
    reference = after_rounds(env, default)
    assert same(reference, after_rounds(env, default))  # the comparison is deterministic
    configured = env.config.engine.action
    for i, name in enumerate(env.action_names):
        base = default.copy()
        if name == "beta" and configured.alpha == 0:
            base[env.action_names.index("alpha")] = 1.0  # at alpha = 0 every importance weight is 1 (docs)
        start = reference if name != "beta" or configured.alpha != 0 else after_rounds(env, base)
        acts = False
        for end in sorted((-1.0, 0.0, 1.0), key=lambda e: abs(e - base[i]), reverse=True):  # the farthest first
            moved = base.copy()
            moved[i] = end
            acts = not same(start, after_rounds(env, moved))
            if acts:
                break
        assert acts, f"{method}: dimension '{name}' changes nothing at -1, 0 or 1"
    env.close()


def test_pre_dfkd_has_only_the_dimensions_that_act(tmp_path: Path) -> None:
    env = build("pre-dfkd", tmp_path)
    assert env.action_names == ["replace_fraction", "synth_budget"] and env.action_space.shape == (2,)
    configured = env.config.engine.action
    decided = env.decode_action(np.array([-1.0, 1.0]))
    assert decided.replace_fraction == 0.0 and decided.synth_budget == 2 * configured.synth_budget
    for name in ("alpha", "beta", "diversity", "difficulty", "eviction"):  # the preset's, whatever the action
        assert getattr(decided, name) == getattr(configured, name)
    assert env.decode_action(env.default_action()) == configured
    previous = next(f for f in env.observation_fields if f.name == "previous_action")
    assert previous.size == 2
    teacher = str(saved_random_teacher(tmp_path / "teacher.pt"))
    forms = {
        mode: make_env(task="digits", method="pre-dfkd", teacher=teacher, action_mode=mode, **SETTINGS).action_space
        for mode in ("multi_discrete", "discrete")
    }
    assert list(forms["multi_discrete"].nvec) == [3, 3] and forms["discrete"].n == 9


def test_ssdkd_keeps_all_seven_dimensions_in_the_canonical_order(tmp_path: Path) -> None:
    env = build("ssdkd", tmp_path)
    assert tuple(env.action_names) == ACTION_NAMES and env.action_space.shape == (7,)
    assert env.decode_action(env.default_action()) == env.config.engine.action
