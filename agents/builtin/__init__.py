"""Agents that need no RL library: baselines, a bandit and a policy-gradient learner."""
