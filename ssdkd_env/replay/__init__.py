"""SSD-KD's dynamic replay buffer with prioritized sampling and partial updates."""

from ssdkd_env.replay.buffer import EVICTION_RULES, BufferBatch, BufferStats, EvictionRule, ReplayBuffer

__all__ = ["EVICTION_RULES", "BufferBatch", "BufferStats", "EvictionRule", "ReplayBuffer"]
