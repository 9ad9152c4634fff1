"""One rule for actions in every dimension and form: a value that is not a finite number is refused
(naming its dimensions, the environment unchanged); finite values outside the space are clipped to it
(the discrete form's single index: refused outside its range)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from helpers import TINY, saved_random_teacher
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ssdkd_env.engine import make_config
from ssdkd_env.env import DistillationEnv, EnvConfig, make_env
from ssdkd_env.env.spaces import ACTION_NAMES, InvalidAction, MultiDiscreteActions
from ssdkd_env.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
# finite values of every size (subnormal to 1e308), with the in-range ones drawn often
FINITE = st.one_of(st.floats(-1, 1), st.floats(allow_nan=False, allow_infinity=False))
EXAMPLES = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, gym.Env]]:
    """One tiny digits environment per action form, each reset once (the tests reset them at episode ends)."""
    teacher = saved_random_teacher(tmp_path_factory.mktemp("teacher") / "t.pt")
    engine = make_config("digits", **{**TINY, "rounds": 2})
    forms = {
        mode: make_env(EnvConfig(engine=engine, teacher=str(teacher), device="cpu", action_mode=mode))
        for mode in ("continuous", "multi_discrete", "discrete")
    }
    for env in forms.values():
        env.reset(seed=0)
    yield forms
    for env in forms.values():
        env.close()


@st.composite
def poisoned(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[np.ndarray, set[int]]:
    """A finite array of ``shape`` with a drawn (possibly empty) set of positions made NaN or infinite."""
    values = draw(arrays(np.float64, shape, elements=FINITE))
    flat = values.reshape(-1)
    positions = draw(st.sets(st.integers(0, flat.size - 1), max_size=flat.size))
    for i in positions:
        flat[i] = draw(NON_FINITE)
    return values, positions


def state(env: gym.Env) -> tuple[Any, ...]:
    """What a step changes: the round, the samples made, the previous action, the episode's flag."""
    base = env.unwrapped
    assert isinstance(base, DistillationEnv) and base.engine is not None
    return base.engine.round, base.engine.synthetic_samples, tuple(base._previous), base._needs_reset


def step_or_refusal(env: gym.Env, action: Any) -> tuple[dict[str, Any] | None, InvalidAction | None]:
    """The step's info, or its refusal (then the environment must be as it was); resets at episode ends."""
    before = state(env)
    try:
        _, _, terminated, truncated, info = env.step(action)
    except InvalidAction as refusal:
        assert isinstance(refusal, UserError) and isinstance(refusal, ValueError)
        assert state(env) == before
        return None, refusal
    if terminated or truncated:
        env.reset()
    return info, None


def named_dimensions(refusal: InvalidAction) -> set[str]:
    message = str(refusal)
    assert "finite" in message and "\n" not in message
    return set(re.findall(r"(\w+)=-?(?:nan|inf)", message))


@EXAMPLES
@given(drawn=poisoned((len(ACTION_NAMES),)))
def test_continuous_actions_refuse_exactly_the_non_finite_dimensions_and_clip_the_rest(
    envs: dict[str, gym.Env], drawn: tuple[np.ndarray, set[int]]
) -> None:
    env = envs["continuous"]
    action, bad = drawn
    info, refusal = step_or_refusal(env, action)
    if bad:
        assert refusal is not None and named_dimensions(refusal) == {ACTION_NAMES[i] for i in bad}
    else:  # every finite action is accepted, clipped to the box
        assert info is not None
        clipped = env.unwrapped.decode_action(np.clip(action, -1, 1))
        assert info["action"] == dataclasses.asdict(clipped)


@EXAMPLES
@given(drawn=poisoned((len(ACTION_NAMES),)))
def test_multi_discrete_actions_refuse_exactly_the_non_finite_dimensions_and_clip_the_rest(
    envs: dict[str, gym.Env], drawn: tuple[np.ndarray, set[int]]
) -> None:
    env = envs["multi_discrete"]
    assert isinstance(env, MultiDiscreteActions)
    action, bad = drawn
    info, refusal = step_or_refusal(env, action)
    if bad:
        assert refusal is not None and named_dimensions(refusal) == {ACTION_NAMES[i] for i in bad}
    else:  # each index clipped to its bins and rounded down
        assert info is not None
        indices = np.floor(np.clip(action, 0, np.array(env.bins) - 1)).astype(np.int64)
        expected = env.unwrapped.decode_action(env.indices_to_unit(indices))
        assert info["action"] == dataclasses.asdict(expected)


@EXAMPLES
@given(drawn=poisoned(()))
def test_a_discrete_action_is_refused_unless_a_finite_index_of_the_space(
    envs: dict[str, gym.Env], drawn: tuple[np.ndarray, set[int]]
) -> None:
    env = envs["discrete"]
    action, bad = drawn
    n = int(env.action_space.n)
    info, refusal = step_or_refusal(env, action)
    if bad:
        assert refusal is not None and named_dimensions(refusal) == {"index"}
    elif not 0 <= float(action) < n:
        assert refusal is not None and f"[0, {n - 1}]" in str(refusal)
    else:
        assert info is not None


def test_every_form_refuses_nan_and_infinity_in_each_dimension_alone(envs: dict[str, gym.Env]) -> None:
    """The rule dimension by dimension (what used to be 'cannot convert float NaN to integer')."""
    for mode in ("continuous", "multi_discrete"):
        for i, name in enumerate(ACTION_NAMES):
            for value in (math.nan, math.inf, -math.inf):
                action = np.zeros(len(ACTION_NAMES))
                action[i] = value
                _, refusal = step_or_refusal(envs[mode], action)
                assert refusal is not None and named_dimensions(refusal) == {name}, (mode, name, value)
    for value in (math.nan, math.inf):
        _, refusal = step_or_refusal(envs["discrete"], value)
        assert refusal is not None and named_dimensions(refusal) == {"index"}


def test_a_refused_step_leaves_the_episode_to_go_on_as_if_it_never_came(tmp_path) -> None:
    """The same seed and actions give the same episode with a refused NaN action in between."""
    config = EnvConfig(
        engine=make_config("digits", **{**TINY, "rounds": 2}),
        teacher=str(saved_random_teacher(tmp_path / "t.pt")),
        device="cpu",
    )
    runs = []
    for refuse_first in (False, True):
        env = make_env(config)
        env.reset(seed=3)
        if refuse_first:
            with pytest.raises(InvalidAction, match="beta=nan"):
                env.step(np.array([0, math.nan, 0, 0, 0, 0, 0]))
        runs.append([env.step(np.full(7, 0.5))[:2] for _ in range(2)])
        env.close()
    for (obs, reward), (obs_again, reward_again) in zip(*runs, strict=True):
        np.testing.assert_array_equal(obs, obs_again)
        assert reward == reward_again
