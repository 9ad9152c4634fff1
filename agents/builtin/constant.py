"""Agents that repeat one action: a given one, SSD-KD's rule, and SSD-KD with uniform replay."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.actions import canonical_uniform, default_action, distillation_env, unit_to_action
from agents.common.stepping import SteppingAgent
from agents.registry import register_agent
from ssdkd_env.errors import UserError


class ConstantAgent(SteppingAgent):
    """Takes the action of :meth:`constant_action` at every step (it still steps the env in ``learn``)."""

    learns = False

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        self.action = self.constant_action()

    @abstractmethod
    def constant_action(self) -> np.ndarray | int:
        """The action, in the env's form."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        return self.action if isinstance(self.action, int) else self.action.copy()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@register_agent
class FixedAgent(ConstantAgent):
    """Hyper ``action``: one float in [-1, 1] per dimension of the method's canonical Box (its
    ``action_names``; snapped in the discrete forms).

    Default: the engine's configured decisions (``env.default_action()``).
    """

    name = "fixed"
    defaults = {"action": None}

    def constant_action(self) -> np.ndarray | int:
        if self.hyper["action"] is None:
            return default_action(self.env)
        unit = np.asarray(self.hyper["action"], dtype=np.float64)
        names = distillation_env(self.env).action_names
        if unit.shape != (len(names),) or not np.all(np.abs(unit) <= 1.0):
            raise UserError(
                f"fixed agent: 'action' must be {len(names)} numbers in [-1, 1], one per action field of this "
                f"method ({', '.join(names)}); got {unit.tolist()}"
            )
        self.hyper["action"] = [float(u) for u in unit]
        return unit_to_action(self.env, unit)


@register_agent
class SSDKDAgent(ConstantAgent):
    """SSD-KD's fixed rule: the defaults of ``train/distill.py --method ssdkd`` (the env's configured action)."""

    name = "ssdkd"

    def constant_action(self) -> np.ndarray | int:
        return default_action(self.env)


@register_agent
class UniformAgent(ConstantAgent):
    """Fast-like replay: SSD-KD's decisions with uniform sampling and no importance weights (alpha = beta = 0)."""

    name = "uniform"

    def constant_action(self) -> np.ndarray | int:
        return unit_to_action(self.env, canonical_uniform(self.env))
