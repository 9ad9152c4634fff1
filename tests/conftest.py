"""Shared pytest set-up: torch's thread count, one teacher cache for the session.

``python -m pytest`` runs on two pytest-xdist workers (``-n 2`` in pyproject.toml), each with torch
on one thread, so that the two of them fill a 2-core machine without contending for it. A run
without workers (``-n 0``) has torch on two threads. Modules that need a given thread count set it
themselves (``one_thread`` below; the golden numbers of test_cpu_identity.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
TORCH_THREADS = 1 if "PYTEST_XDIST_WORKER" in os.environ else 2
torch.set_num_threads(TORCH_THREADS)


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


# The files that take longest (CPU seconds on a 2-core machine, 2026-12-07), in that order. They are
# collected first, so that with ``--dist loadfile`` each xdist worker starts on a long file and the
# short ones fill in at the end, instead of a long file starting last and running alone.
LONG_FIRST = (
    "test_worker_faults.py",
    "test_reliability.py",
    "test_cpu_identity.py",
    "test_compare_methods.py",
    "test_precision.py",
    "test_vector_env.py",
    "test_components.py",
    "test_zoo.py",
    "test_train_teacher.py",
    "test_agents.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the items of the LONG_FIRST files first (stable: each file keeps its own order)."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))
