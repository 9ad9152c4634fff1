"""The memories' eviction rules, in a module of their own so that a round's action can name them without
importing the memories."""

from __future__ import annotations

from typing import Literal

EvictionRule = Literal["lowest", "oldest", "class"]
EVICTION_RULES: tuple[EvictionRule, ...] = ("lowest", "oldest", "class")
