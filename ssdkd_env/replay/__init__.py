"""Memories: the registered interface, SSD-KD's dynamic replay buffer and Fast's growing pool."""

from ssdkd_env.replay.base import (
    EVICTION_RULES,
    MEMORIES,
    NO_MEMORY,
    BaseMemory,
    BufferBatch,
    EvictionRule,
    memory_names,
)
from ssdkd_env.replay.buffer import GrowingPool, ReplayBuffer

__all__ = [
    "EVICTION_RULES",
    "MEMORIES",
    "NO_MEMORY",
    "BaseMemory",
    "BufferBatch",
    "EvictionRule",
    "GrowingPool",
    "ReplayBuffer",
    "memory_names",
]
