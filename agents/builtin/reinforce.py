"""REINFORCE with a learned value baseline: a small Gaussian policy in torch."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from agents.common.stepping import SteppingAgent, Transition
from agents.registry import register_agent
from ssdkd_env.common.device import resolve_device
from ssdkd_env.errors import UserError


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    layers = [nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, outputs)]
    return nn.Sequential(*layers)


class GaussianPolicy(nn.Module):
    """Mean tanh(MLP(obs)) in [-1, 1], a learned state-independent log-std, and a value head."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, init_log_std: float) -> None:
        super().__init__()
        self.mean = mlp(obs_dim, hidden, act_dim)
        self.value = mlp(obs_dim, hidden, 1)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def distribution(self, obs: torch.Tensor) -> Normal:
        mean = torch.tanh(self.mean(obs))
        return Normal(mean, self.log_std.exp().expand_as(mean))


@register_agent
class ReinforceAgent(SteppingAgent):
    """Monte-Carlo policy gradient with a value baseline, updated (Adam) at every episode's end.

    Actions are Gaussian samples clipped to [-1, 1]; the log-probability is taken of the unclipped
    sample. Loss: -log pi(a|s) (G_t - V(s)) + vf_coef (V(s) - G_t)^2 - ent_coef H, with discounted
    returns G_t. Reported losses: ``policy_loss``, ``value_loss``, ``entropy``.
    """

    name = "reinforce"
    learns = True
    action_modes = ("continuous",)
    defaults = {
        "lr": 1e-3,
        "gamma": 0.99,
        "hidden": 64,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "init_log_std": -0.5,
        "max_grad_norm": 0.5,
    }

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        space, obs_space = env.action_space, env.observation_space
        if not (isinstance(space, gym.spaces.Box) and np.all(space.low == -1.0) and np.all(space.high == 1.0)):
            raise UserError("reinforce needs a Box action space in [-1, 1]")
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
            raise UserError("reinforce needs a flat Box observation space")
        self.torch_device = resolve_device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = GaussianPolicy(
                obs_space.shape[0], space.shape[0], int(self.hyper["hidden"]), self.hyper["init_log_std"]
            )
        self.policy = net.to(self.torch_device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.hyper["lr"])
        self.generator = torch.Generator().manual_seed(self.seed)  # CPU noise for sampling
        self._episode: list[tuple[np.ndarray, np.ndarray, float]] = []  # (obs, unclipped action, reward)
        self._sample: np.ndarray | None = None

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.torch_device)

    def _draw(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        with torch.no_grad():
            dist = self.policy.distribution(self._tensor(obs))
            if deterministic:
                return dist.mean.cpu().numpy()
            noise = torch.randn(dist.mean.shape, generator=self.generator).to(self.torch_device)
            return (dist.mean + dist.stddev * noise).cpu().numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.clip(self._draw(obs, deterministic), -1.0, 1.0).astype(np.float32)

    def explore(self, obs: np.ndarray) -> np.ndarray:
        self._sample = self._draw(obs, deterministic=False)
        return np.clip(self._sample, -1.0, 1.0).astype(np.float32)

    def observe(self, step: Transition) -> dict[str, float]:
        assert self._sample is not None
        self._episode.append((step.obs, self._sample, step.reward))
        if not step.done:
            return {}
        losses = self._update()
        self._episode = []
        return losses

    def _update(self) -> dict[str, float]:
        obs, actions, rewards = zip(*self._episode, strict=True)
        returns, running = [], 0.0
        for reward in reversed(rewards):
            running = reward + self.hyper["gamma"] * running
            returns.append(running)
        target = self._tensor(np.array(returns[::-1]))
        obs_t, act_t = self._tensor(np.stack(obs)), self._tensor(np.stack(actions))
        dist = self.policy.distribution(obs_t)
        values = self.policy.value(obs_t).squeeze(-1)
        log_prob = dist.log_prob(act_t).sum(-1)
        entropy = dist.entropy().sum(-1).mean()
        policy_loss = -(log_prob * (target - values.detach())).mean()
        value_loss = F.mse_loss(values, target)
        loss = policy_loss + self.hyper["vf_coef"] * value_loss - self.hyper["ent_coef"] * entropy
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), self.hyper["max_grad_norm"])
        self.optimizer.step()
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
