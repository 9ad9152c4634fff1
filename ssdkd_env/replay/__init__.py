"""Memories: the registered interface, SSD-KD's dynamic replay buffer, Fast's growing pool and
PRE-DFKD's generative pseudo replay."""

from ssdkd_env.replay.base import MEMORIES, NO_MEMORY, BaseMemory, BufferBatch, memory_names
from ssdkd_env.replay.buffer import GrowingPool, ReplayBuffer
from ssdkd_env.replay.condensed import CondensedPool
from ssdkd_env.replay.config import EVICTION_RULES, EvictionRule
from ssdkd_env.replay.generative import GenerativeReplay, VAEConfig

__all__ = [
    "EVICTION_RULES",
    "MEMORIES",
    "NO_MEMORY",
    "BaseMemory",
    "BufferBatch",
    "CondensedPool",
    "EvictionRule",
    "GenerativeReplay",
    "GrowingPool",
    "ReplayBuffer",
    "VAEConfig",
    "memory_names",
]
