"""Config validation: every bad value is a one-line error before any work; every accepted config runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from helpers import TINY, random_teacher
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ssdkd_env.engine import EngineConfig, make_config
from ssdkd_env.engine.config import replace_nested
from ssdkd_env.env import DistillationEnv, EnvConfig
from ssdkd_env.errors import UserError

TEACHER = random_teacher()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rounds", "abc", "rounds='abc': expected an integer"),
        ("kd_steps", -3, "kd_steps=-3: must be >= 0"),
        ("meta-generator.g_steps", 0, "g_steps=0: must be >= 1"),
        ("action.alpha", "high", "alpha='high': expected a number"),
        ("action.eviction", "random", "eviction='random'"),
        ("distiller.temperature", 0.0, "temperature=0.0: must be > 0"),
        ("distiller.augment_flip", 1, "augment_flip=1: expected true or false"),
        ("rounds.x", 3, "unknown config key 'rounds.x'"),
        ("distiller", 3, "'distiller' is a config section"),
        ("synthesis", 3, "unknown config key 'synthesis'"),
        ("meta-generator.warp", 3, "unknown option warp of synthesizer 'meta-generator'"),
        ("memory", "tape", "memory='tape': valid: replay, pool"),
        ("action.replace_fraction", float("nan"), "replace_fraction=nan: expected a number"),
    ],
)
def test_bad_values_are_refused_in_one_line(key: str, value: Any, message: str) -> None:
    with pytest.raises(UserError) as info:
        make_config("digits", **{key: value})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_files_and_dicts_are_checked_the_same_way() -> None:
    with pytest.raises(UserError, match="rounds=-1"):
        EngineConfig.from_dict({"rounds": -1})
    with pytest.raises(UserError, match="section 'action' must be a mapping"):
        EngineConfig.from_dict({"action": [1, 2]})
    with pytest.raises(UserError, match="action_bins=1"):
        EnvConfig.from_dict({"action_bins": 1})
    assert make_config("digits", **{"action.alpha": 1}).action.alpha == 1.0  # integers are numbers
    assert isinstance(make_config("digits", **{"action.alpha": 1}).action.alpha, float)


# Values of every type, in magnitudes a 2-core test can run: the property is that each random
# configuration is either refused with a one-line UserError or runs a round.
VALUES = st.one_of(
    st.integers(-3, 40),
    st.floats(-2.0, 20.0),
    st.sampled_from([float("nan"), float("inf")]),
    st.booleans(),
    st.none(),
    st.sampled_from(["abc", "lowest", "oldest", "class", "kl", "l1", "mse", "pool", "replay", "teacher", "random"]),
    st.lists(st.integers(0, 3), max_size=2),
)
KEYS = [
    "rounds",
    "kd_steps",
    "buffer_size",
    "probe_size",
    "probe_rounds",
    "eval_every",
    "memory",
    "student_init",
    "meta-generator.nz",
    "meta-generator.ngf",
    "meta-generator.g_steps",
    "meta-generator.lr_g",
    "meta-generator.lr_z",
    "meta-generator.meta_lr",
    "meta-generator.generators",
    "meta-generator.bn_weight",
    "meta-generator.oh_weight",
    "meta-generator.adv_weight",
    "meta-generator.tv_weight",
    "meta-generator.bn_momentum",
    "meta-generator.warmup_rounds",
    "distiller.lr",
    "distiller.momentum",
    "distiller.weight_decay",
    "distiller.temperature",
    "distiller.kd_loss",
    "distiller.batch_size",
    "distiller.augment_shift",
    "distiller.augment_flip",
    "distiller.augment_rotate",
    "distiller.augment_scale",
    "distiller.augment_shrink",
    "distiller.augment_mixup",
    "distiller.ema_decay",
    "action.alpha",
    "action.beta",
    "action.diversity",
    "action.difficulty",
    "action.replace_fraction",
    "action.eviction",
    "action.synth_budget",
    "rounds.x",
    "synthesis",
    "nope",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=4))
def test_random_configurations_are_refused_in_one_line_or_run(changes: dict[str, Any]) -> None:
    small = {**TINY, "probe_size": 8, "probe_rounds": 2, "meta-generator.nz": 8, "meta-generator.ngf": 4}
    try:
        config = replace_nested(make_config("digits", **small), **changes)
        env = DistillationEnv(EnvConfig(engine=config, device="cpu"), teacher_model=TEACHER)
        obs, _ = env.reset(seed=0)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        event("refused")
        return
    event("ran a round")
    obs, reward, terminated, truncated, info = env.step(env.default_action())
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    assert info["diverged"] == truncated  # a run that diverges ends its episode; it never crashes
    env.close()
    assert torch.is_tensor(env.teacher(torch.zeros(1, 1, 8, 8)))
