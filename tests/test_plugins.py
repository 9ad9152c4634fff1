"""Entry-point plugins (ssdkd_env.plugins): a package's registrations reach the CLIs, the
environment and ``gym.make``; a broken plugin is one warning line, not a failed script.

The plugin is a real (uninstalled) distribution: a ``*.dist-info`` folder with its
``entry_points.txt`` beside the module, found through ``sys.path`` as an installed one would be.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
from helpers import saved_random_teacher
from scripts import run_in_process, run_script

import ssdkd_env
from agents import AGENTS
from ssdkd_env import plugins
from ssdkd_env.methods import METHODS
from ssdkd_env.plugins import PluginWarning
from ssdkd_env.tasks import TASKS, get_task

MODULE = "ssdkd_test_plugin"
PLUGIN = '''
"""A plugin as a package would ship it: a method preset and a task on import, an agent from a function."""

import dataclasses

from ssdkd_env.methods import METHODS, register_method
from ssdkd_env.tasks import get_task, register_task

register_method("plugin-fast", dict(METHODS.get("fast").overrides), "the fast preset, from a plugin")
register_task(dataclasses.replace(get_task("digits"), name="digits-plugin", description="digits, from a plugin"))


def register_agents():
    from agents import register_agent
    from agents.builtin.constant import FixedAgent

    register_agent(type("PluginAgent", (FixedAgent,), {"name": "plugin-agent"}))


def broken():
    raise RuntimeError("deliberately broken")
'''
ENTRY_POINTS = f"""[ssdkd_env.plugins]
demo = {MODULE}
agents = {MODULE}:register_agents
broken = {MODULE}:broken
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A folder holding the plugin module and its distribution metadata, as site-packages would."""
    (tmp_path / f"{MODULE}.py").write_text(PLUGIN)
    info = tmp_path / f"{MODULE}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {MODULE}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return tmp_path


@pytest.fixture
def installed(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin on this process's path, loaded again at the next lookup; unregistered afterwards."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    plugins.reset()
    yield
    METHODS.remove("plugin-fast")
    TASKS.remove("digits-plugin")
    AGENTS.remove("plugin-agent")
    sys.modules.pop(MODULE, None)
    monkeypatch.undo()
    plugins.reset()  # the next lookup finds the plugin gone


@pytest.mark.usefixtures("installed")
def test_a_plugin_method_runs_an_episode_through_gym_make(tmp_path: Path) -> None:
    with pytest.warns(PluginWarning, match="plugin 'broken' .* deliberately broken"):
        assert "plugin-fast" in METHODS  # the first lookup loads the plugins
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    env = gym.make("SSDKD-Digits-Tiny-v0", method="plugin-fast", teacher=str(teacher))
    assert env.unwrapped.config.engine.method == "plugin-fast"
    assert env.unwrapped.config.engine.memory == METHODS.get("fast").overrides["memory"]
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.unwrapped.default_action())
        steps, done = steps + 1, terminated or truncated
        assert reward == reward  # not NaN
    env.close()
    assert steps == ssdkd_env.TINY_DIGITS["rounds"]
    assert get_task("digits-plugin").num_classes == 10 and "plugin-agent" in AGENTS
    assert "plugin-agent" in run_in_process("run_agent", "--help").stdout


def test_a_fresh_process_lists_plugin_registrations_and_names_the_broken_one(plugin_dir: Path) -> None:
    path = os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")]))
    result = run_script("distill", "--help", env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    assert "plugin-fast" in result.stdout and "digits-plugin" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "plugin 'broken'" in lines[0] and "RuntimeError: deliberately broken" in lines[0]


def test_without_plugins_nothing_is_added() -> None:
    assert "plugin-fast" not in METHODS and "digits-plugin" not in TASKS
