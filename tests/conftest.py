"""Shared pytest set-up: keep torch to the machine's two cores and the cache in a temp folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty teacher cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SSDKD_ENV_CACHE", str(cache))
    return cache
