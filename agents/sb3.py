"""Stable-Baselines3 algorithms behind the :class:`Agent` interface: ppo, a2c, dqn, sac, td3."""

from __future__ import annotations

import copy
import inspect
import math
import pickle
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import BaseBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import obs_as_tensor, should_collect_more_steps
from stable_baselines3.common.vec_env import VecEnv

from agents.base import Agent, Callback
from agents.common import sb3_files
from agents.common.actions import canonical_rule, canonical_uniform
from agents.registry import register_agent
from ssdkd_env.errors import UserError

MODEL_FILE = "model.zip"
RUN_STATE = "sb3_state"  # sb3_state.npz and sb3_state.json: what SB3 would pickle, as data
LEGACY_REPLAY_FILE = "replay_buffer.pkl"  # SB3's pickled replay buffer (release 2026-12-07 and before): never read
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
        self.stopped_in: dict[str, Any] | None = None  # the step's locals when it stopped SB3 (see SB3Agent.learn)

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
        self.agent._note_episode_starts(dones)
        self.agent._step = self.locals  # a save from the user's callback saves the state after this step
        try:
            for index, raw_info in enumerate(self.locals["infos"]):
                info = {k: v for k, v in raw_info.items() if k not in _SB3_INFO_KEYS}
                done = bool(dones[index])
                reward = float(self.locals["rewards"][index])
                record = self.agent._track_step(reward, done, info, losses if index == 0 else {}, index)
                if self.user_callback is not None and self.user_callback(record) is False:
                    self.stopped_in = dict(self.locals)
                    return False
        finally:
            self.agent._step = None
        if self.agent.num_steps < self.total_steps or self._rollout_ends_here(bool(dones.any())):
            return True
        self.stopped_in = dict(self.locals)
        return False


@dataclass
class _RunState:
    """What SB3 keeps between steps besides the networks: the next observation, episode starts,
    episode statistics and the rollout or replay buffer."""

    last_obs: np.ndarray | None
    episode_starts: np.ndarray | None
    episodes: deque
    successes: deque
    buffer: BaseBuffer | None


def _worth_keeping(buffer: BaseBuffer) -> bool:
    """A replay buffer always; a rollout buffer while it holds steps not trained on yet (SB3 marks
    one when training reads it)."""
    return not isinstance(buffer, RolloutBuffer) or (buffer.pos > 0 and not buffer.generator_ready)


def _add_step(model: OnPolicyAlgorithm, buffer: RolloutBuffer, step: dict[str, Any]) -> None:
    """Add the step of ``step`` (collect_rollouts' locals at its step callback) to ``buffer``, as
    SB3 does after the callback (an episode cut by a time limit bootstrapped from its last value)."""
    actions, rewards = step["actions"], np.array(step["rewards"])
    if isinstance(model.action_space, gym.spaces.Discrete):
        actions = actions.reshape(-1, 1)
    for idx, done in enumerate(step["dones"]):
        info = step["infos"][idx]
        if done and info.get("terminal_observation") is not None and info.get("TimeLimit.truncated", False):
            terminal_obs = model.policy.obs_to_tensor(info["terminal_observation"])[0]
            with torch.no_grad():
                rewards[idx] += model.gamma * model.policy.predict_values(terminal_obs)[0]  # type: ignore[arg-type]
    buffer.add(model._last_obs, actions, rewards, model._last_episode_starts, step["values"], step["log_probs"])  # type: ignore[arg-type]


class SB3Agent(Agent):
    """Wraps an SB3 algorithm with an ``MlpPolicy``; hyper-parameters are its constructor arguments.

    ``env`` may be a single environment or a ``VecEnv`` of several (:mod:`ssdkd_env.env.vector`);
    with N environments a step of the vector counts N steps. ``learn`` stops at ``total_steps``
    (rounded up to a whole step of the vector): an on-policy rollout cut short by that is kept and
    completed by the next ``learn`` (of this agent or of one loaded from its save), then trained on.
    Losses are the ``train/*`` values SB3 logs, reported with the first step after each update.

    ``save`` writes SB3's zip (networks, optimizers, settings) plus ``sb3_state.npz``/``.json``:
    the run state SB3 would pickle (next observation, episode statistics, the rollout or replay
    buffer, torch's and numpy's global random states, and -- when every environment is at the start
    of an episode -- their episode seeds and random states). A save from inside a step's callback
    holds the state after that step (for off-policy algorithms without that step's transition).
    ``load`` reads all of it as data (no pickle is ever read): an on-policy agent saved when every
    environment had just ended an episode (one environment: at any episode's end) goes on exactly
    as if it had not stopped; otherwise learning goes on with fresh episodes (SB3's reset, with the
    environments' first seeds). The run state goes back only onto as many environments as it was
    saved from (a policy loaded on another number, to be evaluated, gets the networks and settings).
    """

    learns = True
    algorithm: ClassVar[type[BaseAlgorithm]]

    # Hyper-parameters of this wrapper, not of the SB3 algorithm.
    own_hypers: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, env: gym.Env | VecEnv, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        self.model = self.algorithm("MlpPolicy", env, seed=self.seed, device=device, **self.algorithm_kwargs())
        self._step: dict[str, Any] | None = None  # collect_rollouts' locals while a step's callback runs
        self._starts: list[dict[str, Any]] | None = None  # see _note_episode_starts
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

    @classmethod
    def hyper_types(cls) -> dict[str, Any]:
        """The SB3 constructor's annotations, and the types of this wrapper's own defaults."""
        own = {name: kind for name, kind in super().hyper_types().items() if name in cls.own_hypers}
        parameters = inspect.signature(cls.algorithm.__init__).parameters
        return {**own, **{name: parameters[name].annotation for name in cls.hyper_names() - cls.own_hypers}}

    def learn(self, total_steps: int, callback: Callback | None = None) -> None:
        if self.num_steps >= total_steps:
            return
        model = self.model
        forward = _ForwardSteps(self, total_steps, callback)
        if isinstance(model, OnPolicyAlgorithm) and _worth_keeping(model.rollout_buffer):
            model.collect_rollouts = self._rest_of_rollout  # type: ignore[method-assign,assignment]
        try:
            model.learn(total_steps - self.num_steps, callback=forward, reset_num_timesteps=False)
        finally:
            vars(model).pop("collect_rollouts", None)
        if forward.stopped_in is not None:  # SB3 left the step half done: finish it as SB3 would have
            self._apply(self._after_step(forward.stopped_in))

    def _rest_of_rollout(
        self, env: VecEnv, callback: BaseCallback, buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """SB3's ``collect_rollouts`` for a rollout begun before (in an earlier ``learn``, or before a save):
        only the steps it still lacks, after those in ``buffer``."""
        model = self.model
        assert isinstance(model, OnPolicyAlgorithm)
        del model.collect_rollouts  # the next rollouts are SB3's own
        collected = buffer.pos
        if collected < n_rollout_steps:
            buffer.reset = lambda: None  # type: ignore[method-assign]  # keep the steps collected so far
            try:
                return model.collect_rollouts(env, callback, buffer, n_rollout_steps - collected)
            finally:
                del buffer.reset
        model.policy.set_training_mode(False)  # the rollout is complete: what SB3 does after its last step
        with torch.no_grad():
            values = model.policy.predict_values(obs_as_tensor(model._last_obs, model.device))  # type: ignore[arg-type]
        buffer.compute_returns_and_advantage(last_values=values, dones=model._last_episode_starts)  # type: ignore[arg-type]
        return True

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return int(action) if self.action_mode == "discrete" else action

    def _note_episode_starts(self, dones: np.ndarray) -> None:
        """After a step: when it ended every environment's episode, keep their next episodes' seeds and
        random states (for a save, which may come once the environments are closed), else nothing."""
        env = self.model.get_env()
        seeds = [info.get("episode_seed") for info in env.reset_infos] if env is not None else [None]
        self._starts = None
        if bool(np.all(dones)) and all(isinstance(seed, int) for seed in seeds):
            generators = env.get_attr("np_random")  # type: ignore[union-attr]
            self._starts = [
                {"episode_seed": seed, "np_random": sb3_files.generator_state(generator)}
                for seed, generator in zip(seeds, generators, strict=True)
            ]

    def _buffer(self) -> BaseBuffer | None:
        model = self.model
        if isinstance(model, OnPolicyAlgorithm):
            return model.rollout_buffer
        return model.replay_buffer if isinstance(model, OffPolicyAlgorithm) else None

    def _after_step(self, step: dict[str, Any] | None) -> _RunState:
        """The run state once SB3 has finished the step of ``step`` (collect_rollouts' locals at its
        callback), in new objects; the current one when ``step`` is None."""
        model = self.model
        episodes = deque(model.ep_info_buffer or (), maxlen=model._stats_window_size)
        successes = deque(model.ep_success_buffer or (), maxlen=model._stats_window_size)
        buffer = self._buffer()
        if step is None:
            return _RunState(model._last_obs, model._last_episode_starts, episodes, successes, buffer)  # type: ignore[arg-type]
        for info, done in zip(step["infos"], step["dones"], strict=True):
            if info.get("episode") is not None:
                episodes.append(info["episode"])
            if info.get("is_success") is not None and done:
                successes.append(info["is_success"])
        if isinstance(model, OnPolicyAlgorithm):
            assert isinstance(buffer, RolloutBuffer)
            buffer = copy.copy(buffer)
            for name, array in sb3_files.buffer_arrays(buffer).items():
                setattr(buffer, name, array.copy())
            _add_step(model, buffer, step)
        return _RunState(step["new_obs"], step["dones"], episodes, successes, buffer)

    def _apply(self, state: _RunState) -> None:
        model = self.model
        model._last_obs, model._last_episode_starts = state.last_obs, state.episode_starts  # type: ignore[assignment]
        model.ep_info_buffer, model.ep_success_buffer = state.episodes, state.successes
        if isinstance(model, OnPolicyAlgorithm):
            assert isinstance(state.buffer, RolloutBuffer)
            model.rollout_buffer = state.buffer

    def _save_state(self, folder: Path) -> None:
        self.model.save(folder / MODEL_FILE)
        state = self._after_step(self._step)
        arrays, rng = sb3_files.random_states()
        meta: dict[str, Any] = {"ep_info_buffer": list(state.episodes), "ep_success_buffer": list(state.successes)}
        meta.update(rng_numpy=rng, n_envs=self.model.n_envs)
        if state.last_obs is not None and state.episode_starts is not None:
            arrays.update(last_obs=np.asarray(state.last_obs), episode_starts=np.asarray(state.episode_starts))
            if self._starts is not None:
                meta["envs"] = self._starts
        if state.buffer is not None and _worth_keeping(state.buffer):
            arrays.update({f"buffer.{k}": v for k, v in sb3_files.buffer_arrays(state.buffer).items()})
            meta["buffer"] = {"pos": int(state.buffer.pos), "full": bool(state.buffer.full)}
        sb3_files.write_run_state(folder, RUN_STATE, arrays, meta)

    def _load_state(self, folder: Path) -> None:
        """SB3's zip with every pickled value replaced (:func:`agents.common.sb3_files.custom_objects`),
        then the run state from ``sb3_state.npz``/``.json``; an agent saved without them (by the
        release of 2026-12-07 or before) goes on with a fresh episode and, off-policy, an empty replay buffer."""
        file = folder / MODEL_FILE
        objects = sb3_files.custom_objects(sb3_files.read_model_data(file), self.model, file)
        try:
            self.model = self.algorithm.load(file, env=self.env, device=self.device, custom_objects=objects)
        except pickle.UnpicklingError:
            raise UserError(
                f"{file} is refused: its tensors hold other objects, which SB3 never writes (files are loaded as "
                f"data only); {sb3_files.FIX}"
            ) from None
        except (RuntimeError, ValueError, KeyError) as exc:
            reason = " ".join(str(exc).split())
            raise UserError(
                f"{file} does not fit agent '{self.name}' on this environment ({reason}); {sb3_files.FIX}"
            ) from None
        saved = sb3_files.read_run_state(folder, RUN_STATE)
        if saved is not None:
            self._restore(*saved, folder / f"{RUN_STATE}.json")
        elif (folder / LEGACY_REPLAY_FILE).is_file():
            warnings.warn(
                f"{folder / LEGACY_REPLAY_FILE} is not read (a pickle; files are loaded as data only): learning goes "
                "on with an empty replay buffer",
                stacklevel=2,
            )
        self.num_steps = self.model.num_timesteps
        self._log_in_memory()

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], file: Path) -> None:
        """Put back what :meth:`_save_state` wrote besides SB3's zip (see the class docstring)."""
        model = self.model
        model.ep_info_buffer = deque(meta.get("ep_info_buffer", []), maxlen=model._stats_window_size)
        model.ep_success_buffer = deque(meta.get("ep_success_buffer", []), maxlen=model._stats_window_size)
        model._last_obs = None  # type: ignore[assignment]  # SB3 starts fresh episodes, unless set below
        env, buffer = model.get_env(), self._buffer()
        if env is not None and meta.get("n_envs") == env.num_envs:  # else: loaded to act elsewhere (evaluation)
            if buffer is not None and "buffer" in meta:
                sb3_files.restore_buffer(buffer, arrays, meta["buffer"], file)
            if "envs" in meta and {"last_obs", "episode_starts"} <= set(arrays):
                # every environment was at the start of an episode: start the same ones, random states as they were
                for index, (seed, generator) in enumerate(sb3_files.episode_starts(meta["envs"], env.num_envs, file)):
                    obs, env.reset_infos[index] = env.env_method("reset", indices=[index], seed=seed)[0]
                    env.set_attr("np_random", generator, [index])
                if arrays["last_obs"].shape != (env.num_envs, *obs.shape):
                    raise UserError(f"{file}: the saved observations do not fit this environment; {sb3_files.FIX}")
                model._last_obs, model._last_episode_starts = arrays["last_obs"], arrays["episode_starts"]  # type: ignore[assignment]
                self._starts = meta["envs"]
        sb3_files.restore_random_states(arrays, meta.get("rng_numpy", {}), file)  # last: resets may draw


class GaussianPolicyAgent(SB3Agent):
    """An on-policy algorithm whose continuous policy is a diagonal Gaussian (PPO, A2C).

    Two hyper-parameters of its own set where learning starts in the continuous form:
    - ``start_at_rule``: the Gaussian's mean starts at SSD-KD's configured decisions (the env's
      ``default_action()``) instead of the centre of the box. The action layer's bias is set to the
      rule's canonical action; its weights start near zero (SB3's orthogonal init, gain 0.01), so
      every observation first maps to the rule and learning moves away from it where that pays.
    - ``start_at_uniform``: the same, at the ``uniform`` baseline's action (the rule with alpha = beta = 0),
      for learning that moves away from the strongest fixed baseline of the instance suites.
    - ``initial_std``: the Gaussian's initial standard deviation (SB3's default 1 spreads the first
      actions over the whole [-1, 1] box, as wide as random actions).
    """

    own_defaults: ClassVar[dict[str, Any]] = {"start_at_rule": False, "start_at_uniform": False, "initial_std": 1.0}
    own_hypers = frozenset(own_defaults)

    def __init__(self, env: gym.Env | VecEnv, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        starts = [key for key in ("start_at_rule", "start_at_uniform") if self.hyper[key]]
        if len(starts) > 1:
            raise UserError(f"agent '{self.name}': start_at_rule and start_at_uniform exclude each other")
        if starts:
            if self.action_mode != "continuous":
                raise UserError(f"agent '{self.name}': {starts[0]} needs the continuous action form")
            start = canonical_rule(env) if starts[0] == "start_at_rule" else canonical_uniform(env)
            action_net = self.model.policy.action_net
            assert isinstance(action_net, torch.nn.Linear)  # a diagonal Gaussian's mean layer
            bias = action_net.bias
            with torch.no_grad():
                bias.copy_(torch.as_tensor(start, dtype=bias.dtype, device=bias.device))

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
