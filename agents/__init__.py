"""Agents for the distillation environment, behind one interface (:class:`Agent`) and a registry.

Built in: ``random``, ``fixed``, ``ssdkd``, ``uniform`` (baselines that repeat or sample
actions), ``ucb`` (a bandit over curated decisions), ``reinforce`` (policy gradient in torch), ``search``
(the best constant action by random search with a learner's budget), ``tpe-constant`` and
``tpe-schedule`` (the best constant action and three-phase schedule by Optuna's TPE, same budget),
``linucb`` (a contextual bandit, the observation as context);
from Stable-Baselines3: ``ppo``, ``a2c``, ``dqn``, ``sac``, ``td3``.

Build the environment with the agent's preferred action form, then learn::

    env = make_env(task="digits", action_mode=preferred_action_mode("ppo"), train_teacher=True)
    agent = make_agent("ppo", env, seed=0)
    agent.learn(total_steps=1000, callback=lambda record: print(record["step"], record["reward"]))
    agent.save(Path("runs/ppo"))

Adding an agent: subclass :class:`Agent` (or :class:`agents.common.stepping.SteppingAgent`, which
runs the step loop and asks only for ``act``, ``observe`` and ``state_dict``/``load_state_dict``),
set ``name``, ``learns``, ``action_modes`` and ``defaults``, decorate the class with
:func:`register_agent`, and import its module here (or from a plugin package, :mod:`ssdkd_env.plugins`).
"""

from agents import sb3  # noqa: F401  (registers the SB3 agents)
from agents.base import Agent
from agents.builtin import (  # noqa: F401  (register the built-in agents)
    constant,
    linucb,
    random_agent,
    reinforce,
    search,
    tpe,
    ucb,
)
from agents.registry import AGENTS, list_agents, load_agent, make_agent, preferred_action_mode, register_agent

__all__ = ["AGENTS", "Agent", "list_agents", "load_agent", "make_agent", "preferred_action_mode", "register_agent"]
