"""Shared pytest set-up: torch on the machine's two cores, one teacher cache for the session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)


@pytest.fixture(autouse=True, scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A teacher cache shared by the whole session (never the user's own ~/.cache)."""
    cache = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("SSDKD_ENV_CACHE")
    os.environ["SSDKD_ENV_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("SSDKD_ENV_CACHE", None)
    else:
        os.environ["SSDKD_ENV_CACHE"] = previous


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one thread for a module of tiny networks (they run fastest without OpenMP
    contention); use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
