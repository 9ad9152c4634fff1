"""Open-loop baselines found by Optuna's TPE sampler with a learner's budget of environment steps.

``tpe-constant`` searches the method's canonical [-1, 1] box for the best constant action, as
``search`` does at random; ``tpe-schedule`` searches for the best schedule of three constant
actions, one per third of the episode's rounds. Each trial plays one learning episode and is scored
by its return, so ``total_steps`` of learning try ``total_steps / rounds`` trials: exactly the
environment steps a learner trained with ``total_steps`` used.

Optuna is an optional dependency (``pip install 'ssdkd_env[tpe]'``), imported when an agent is built.
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.common.actions import binned_form, unit_to_action
from agents.common.stepping import SteppingAgent, Transition
from agents.registry import register_agent
from ssdkd_env.errors import UserError

PROGRESS_INDEX = 0
"""Where the observation holds ``progress`` (rounds done / rounds in the episode): its first field
(:func:`ssdkd_env.env.spaces.observation_fields`)."""


def import_optuna(agent: str) -> ModuleType:
    """Optuna with its per-trial logging silenced, or a one-line :class:`UserError` naming the extra."""
    try:
        import optuna
    except ImportError:
        raise UserError(f"agent '{agent}' needs Optuna: pip install 'ssdkd_env[tpe]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def canonical_width(env: gym.Env) -> int:
    """The dimensions of the canonical [-1, 1] box behind ``env``'s action form."""
    binned = binned_form(env)
    if binned is not None:
        return len(binned.names)
    space = env.action_space
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        raise UserError(f"expected a flat Box action space or a discrete form of one, got {space}")
    return int(space.shape[0])


def phase_of(obs: np.ndarray, phases: int) -> int:
    """The phase (0 .. ``phases - 1``) of the round about to be played: round ``r`` of ``R`` is in
    phase ``floor(phases * r / R)``, read from the observation's ``progress`` (= r / R)."""
    progress = float(np.asarray(obs).reshape(-1)[PROGRESS_INDEX])
    return min(phases - 1, max(0, math.floor(phases * progress + 1e-6)))


class TPESearchAgent(SteppingAgent):
    """An open-loop schedule of ``phases`` constant actions, searched by TPE (Bergstra et al.,
    NeurIPS 2011; ``optuna.samplers.TPESampler``): each learning episode plays one trial, a point of
    [-1, 1]^(phases x n) over the method's canonical box, and its return is the trial's value;
    ``act`` plays the trial with the best return (the centre of the box before any trial ended).

    The sampler of trial ``k`` is seeded from (``seed``, ``k``) and sees every finished trial, so a
    trial depends only on the seed and the trials before it: an agent saved at an episode's end and
    loaded goes on exactly as if it had not stopped. Hyper-parameters: ``n_startup_trials`` (random
    trials before TPE models the returns) and ``multivariate`` (a joint density over the dimensions
    rather than one per dimension).
    """

    phases: ClassVar[int]
    learns = True
    defaults = {"n_startup_trials": 10, "multivariate": True}

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        if int(self.hyper["n_startup_trials"]) < 1:
            raise UserError(f"agent '{self.name}': n_startup_trials must be at least 1")
        self._optuna = import_optuna(self.name)
        self.width = canonical_width(env)
        self.units: list[list[float]] = []  # the point of each finished trial: phases x width numbers in [-1, 1]
        self.returns: list[float] = []  # each finished trial's episode return
        self._unit: np.ndarray | None = None  # the trial being played (None: the next episode asks a new one)
        self._episode_return = 0.0

    def _ask(self) -> np.ndarray:
        """The next trial's point, from a sampler seeded by (seed, trials so far) over every finished trial."""
        optuna = self._optuna
        names = [f"u{i}" for i in range(self.phases * self.width)]
        space = {name: optuna.distributions.FloatDistribution(-1.0, 1.0) for name in names}
        seed = int(np.random.SeedSequence([self.seed, len(self.returns)]).generate_state(1)[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=int(self.hyper["n_startup_trials"]),
                multivariate=bool(self.hyper["multivariate"]),
            )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials(
            [
                optuna.trial.create_trial(params=dict(zip(names, unit, strict=True)), distributions=space, value=value)
                for unit, value in zip(self.units, self.returns, strict=True)
            ]
        )
        trial = study.ask(space)
        return np.array([trial.params[name] for name in names])

    def best_unit(self) -> np.ndarray:
        """The point of the trial with the best return (zeros, the centre of the box, before any)."""
        if not self.returns:
            return np.zeros(self.phases * self.width)
        return np.asarray(self.units[int(np.argmax(self.returns))])

    def _play(self, unit: np.ndarray, obs: np.ndarray) -> np.ndarray | int:
        return unit_to_action(self.env, unit.reshape(self.phases, self.width)[phase_of(obs, self.phases)])

    def explore(self, obs: np.ndarray) -> np.ndarray | int:
        if self._unit is None:
            self._unit = self._ask()
        return self._play(self._unit, obs)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        return self._play(self.best_unit(), obs)

    def observe(self, step: Transition) -> dict[str, float]:
        self._episode_return += step.reward
        if not step.done:
            return {}
        assert self._unit is not None  # explore asked it at the episode's first step
        self.units.append([float(u) for u in self._unit])
        self.returns.append(self._episode_return)
        self._unit, self._episode_return = None, 0.0
        return {"trial_return": self.returns[-1], "best_return": max(self.returns), "trials": float(len(self.returns))}

    def state_dict(self) -> dict[str, Any]:
        return {"units": self.units, "returns": self.returns}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        units, returns = [[float(u) for u in unit] for unit in state["units"]], [float(r) for r in state["returns"]]
        size = self.phases * self.width
        if len(units) != len(returns) or any(len(unit) != size for unit in units):
            raise ValueError(f"expected trials of {size} numbers each with one return, got {len(units)} trials")
        self.units, self.returns = units, returns
        self._unit, self._episode_return = None, 0.0


@register_agent
class TPEConstantAgent(TPESearchAgent):
    """The best constant action found by TPE (Optuna) with a learner's budget of environment steps."""

    name = "tpe-constant"
    phases = 1


@register_agent
class TPEScheduleAgent(TPESearchAgent):
    """The best schedule of three constant actions (rounds split in thirds) found by TPE with a learner's budget."""

    name = "tpe-schedule"
    phases = 3
