"""Stable-Baselines3 algorithms behind the :class:`Agent` interface: ppo, a2c, dqn, sac, td3."""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import should_collect_more_steps
from stable_baselines3.common.vec_env import VecEnv

from agents.base import Agent, Callback
from agents.common.actions import canonical_rule
from agents.registry import register_agent
from ssdkd_env.errors import UserError

MODEL_FILE = "model.zip"
REPLAY_FILE = "replay_buffer.pkl"
# Keys SB3 adds to a step's info; left out of the records.
_SB3_INFO_KEYS = ("terminal_observation", "episode", "TimeLimit.truncated")
# Constructor arguments the wrapper sets itself.
_RESERVED = {"self", "policy", "env", "seed", "device", "_init_setup_model"}


class _ForwardSteps(BaseCallback):
    """Forwards every step to the agent's callback; stops at the agent's target step count."""

    def __init__(self, agent: SB3Agent, total_steps: int, callback: Callback | None) -> None:
        super().__init__()
        self.agent = agent
        self.total_steps = total_steps
        self.user_callback = callback
        self._updates_seen: Any = None

    def _new_losses(self) -> dict[str, float]:
        """The latest update's ``train/*`` values, once per update (SB3 logs them after each update)."""
        logged = self.logger.name_to_value
        updates = logged.get("train/n_updates")
        if updates is None or updates == self._updates_seen:
            return {}
        self._updates_seen = updates
        return {
            key.removeprefix("train/"): float(value)
            for key, value in logged.items()
            if key.startswith("train/") and key != "train/n_updates"
        }

    def _rollout_ends_here(self, done: bool) -> bool:
        """Whether SB3 stops collecting after this step anyway (so its update still runs)."""
        loc = self.locals
        if "n_rollout_steps" in loc:  # on-policy
            return loc["n_steps"] + 1 >= loc["n_rollout_steps"]
        if "train_freq" in loc:  # off-policy
            return not should_collect_more_steps(
                loc["train_freq"], loc["num_collected_steps"], loc["num_collected_episodes"] + int(done)
            )
        return False

    def _on_step(self) -> bool:
        losses = self._new_losses()
        dones = self.locals["dones"]
        for index, raw_info in enumerate(self.locals["infos"]):
            info = {k: v for k, v in raw_info.items() if k not in _SB3_INFO_KEYS}
            done = bool(dones[index])
            reward = float(self.locals["rewards"][index])
            record = self.agent._track_step(reward, done, info, losses if index == 0 else {}, index)
            if self.user_callback is not None and self.user_callback(record) is False:
                return False
        return self.agent.num_steps < self.total_steps or self._rollout_ends_here(bool(dones.any()))


class SB3Agent(Agent):
    """Wraps an SB3 algorithm with an ``MlpPolicy``; hyper-parameters are its constructor arguments.

    ``env`` may be a single environment or a ``VecEnv`` of several (:mod:`ssdkd_env.env.vector`);
    with N environments a step of the vector counts N steps. ``learn`` stops at ``total_steps``
    (rounded up to a whole step of the vector): an on-policy rollout cut short by that is not
    trained on. Losses are the ``train/*`` values SB3 logs, reported with the first step after
    each update. ``save`` writes SB3's zip (and the replay buffer of off-policy algorithms).
    """

    learns = True
    algorithm: ClassVar[type[BaseAlgorithm]]

    # Hyper-parameters of this wrapper, not of the SB3 algorithm.
    own_hypers: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, env: gym.Env | VecEnv, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        self.model = self.algorithm("MlpPolicy", env, seed=self.seed, device=device, **self.algorithm_kwargs())
        self._log_in_memory()

    def algorithm_kwargs(self) -> dict[str, Any]:
        """The SB3 constructor's arguments: the hyper-parameters, less this wrapper's own (fresh
        copies: SB3 edits some in place, and ``hyper`` is saved as JSON)."""
        return copy.deepcopy({k: v for k, v in self.hyper.items() if k not in self.own_hypers})

    def _log_in_memory(self) -> None:
        """Keep SB3's logged values in memory (the losses are read from there).

        Without a log destination SB3 makes a new empty temp folder at every ``learn``; a user
        who asks for ``tensorboard_log`` or ``verbose`` output keeps SB3's own logger.
        """
        if self.hyper.get("tensorboard_log") is None and not self.hyper.get("verbose"):
            self.model.set_logger(Logger(folder=None, output_formats=[]))

    @classmethod
    def hyper_names(cls) -> set[str]:
        return (set(inspect.signature(cls.algorithm.__init__).parameters) - _RESERVED) | cls.own_hypers

    def learn(self, total_steps: int, callback: Callback | None = None) -> None:
        if self.num_steps >= total_steps:
            return
        forward = _ForwardSteps(self, total_steps, callback)
        self.model.learn(total_steps - self.num_steps, callback=forward, reset_num_timesteps=False)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return int(action) if self.action_mode == "discrete" else action

    def _save_state(self, folder: Path) -> None:
        self.model.save(folder / MODEL_FILE)
        if isinstance(self.model, OffPolicyAlgorithm):
            self.model.save_replay_buffer(folder / REPLAY_FILE)

    def _load_state(self, folder: Path) -> None:
        self.model = self.algorithm.load(folder / MODEL_FILE, env=self.env, device=self.device)
        if isinstance(self.model, OffPolicyAlgorithm) and (folder / REPLAY_FILE).is_file():
            self.model.load_replay_buffer(folder / REPLAY_FILE)
        self.num_steps = self.model.num_timesteps
        self._log_in_memory()


class GaussianPolicyAgent(SB3Agent):
    """An on-policy algorithm whose continuous policy is a diagonal Gaussian (PPO, A2C).

    Two hyper-parameters of its own set where learning starts in the continuous form:
    - ``start_at_rule``: the Gaussian's mean starts at SSD-KD's configured decisions (the env's
      ``default_action()``) instead of the centre of the box. The action layer's bias is set to the
      rule's canonical action; its weights start near zero (SB3's orthogonal init, gain 0.01), so
      every observation first maps to the rule and learning moves away from it where that pays.
    - ``initial_std``: the Gaussian's initial standard deviation (SB3's default 1 spreads the first
      actions over the whole [-1, 1] box, as wide as random actions).
    """

    own_defaults: ClassVar[dict[str, Any]] = {"start_at_rule": False, "initial_std": 1.0}
    own_hypers = frozenset(own_defaults)

    def __init__(self, env: gym.Env | VecEnv, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        if self.hyper["start_at_rule"]:
            if self.action_mode != "continuous":
                raise UserError(f"agent '{self.name}': start_at_rule needs the continuous action form")
            action_net = self.model.policy.action_net
            assert isinstance(action_net, torch.nn.Linear)  # a diagonal Gaussian's mean layer
            bias = action_net.bias
            with torch.no_grad():
                bias.copy_(torch.as_tensor(canonical_rule(env), dtype=bias.dtype, device=bias.device))

    def algorithm_kwargs(self) -> dict[str, Any]:
        std = self.hyper["initial_std"]
        if isinstance(std, bool) or not isinstance(std, int | float) or std <= 0:
            raise UserError(f"agent '{self.name}': initial_std must be a positive number, got {std!r}")
        kwargs = super().algorithm_kwargs()
        kwargs["policy_kwargs"] = {"log_std_init": math.log(std), **(kwargs.get("policy_kwargs") or {})}
        return kwargs


@register_agent
class PPOAgent(GaussianPolicyAgent):
    name = "ppo"
    algorithm = PPO
    action_modes = ("continuous", "multi_discrete", "discrete")
    # n_steps per environment: with the default 2 environments a rollout is 64 rounds (6 budget-regime episodes)
    defaults = {
        "n_steps": 32,
        "batch_size": 32,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "verbose": 0,
        **GaussianPolicyAgent.own_defaults,
    }


@register_agent
class A2CAgent(GaussianPolicyAgent):
    name = "a2c"
    algorithm = A2C
    action_modes = ("continuous", "multi_discrete", "discrete")
    defaults = {
        "n_steps": 8,
        "learning_rate": 7e-4,
        "gamma": 0.99,
        "verbose": 0,
        **GaussianPolicyAgent.own_defaults,
    }


@register_agent
class DQNAgent(SB3Agent):
    name = "dqn"
    algorithm = DQN
    action_modes = ("discrete",)
    defaults = {
        "learning_starts": 32,
        "buffer_size": 5000,
        "batch_size": 32,
        "train_freq": 1,
        "target_update_interval": 100,
        "exploration_fraction": 0.3,
        "gamma": 0.99,
        "verbose": 0,
    }


OFF_POLICY_CONTINUOUS_DEFAULTS = {
    "learning_starts": 32,
    "buffer_size": 5000,
    "batch_size": 64,
    "gamma": 0.99,
    "verbose": 0,
}


@register_agent
class SACAgent(SB3Agent):
    name = "sac"
    algorithm = SAC
    action_modes = ("continuous",)
    defaults = OFF_POLICY_CONTINUOUS_DEFAULTS


@register_agent
class TD3Agent(SB3Agent):
    name = "td3"
    algorithm = TD3
    action_modes = ("continuous",)
    defaults = OFF_POLICY_CONTINUOUS_DEFAULTS
