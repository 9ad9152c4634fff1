"""MkDocs hook: reference tables generated from the project's registries and parsers at build time.

A page asks for a table with a line ``{{ table: NAME }}`` or ``{{ table: cli SCRIPT }}`` (SCRIPT is a
``train/*.py`` name); the hook replaces it with Markdown built from the code, so no table can go
stale. An unknown name stops the build. ``render(name, arg)`` is the same function for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^\{\{ table: ([a-z-]+)(?: ([a-z_]+))? \}\}$", re.MULTILINE)


def _cell(text: object) -> str:
    """One table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def observation() -> str:
    from ssdkd_env.env.spaces import observation_fields
    from ssdkd_env.observation import markdown_table
    from ssdkd_env.replay import ReplayBuffer

    return markdown_table(observation_fields(10, ReplayBuffer))


def action() -> str:
    from ssdkd_env.env.spaces import action_table

    return action_table()


def method_actions() -> str:
    from ssdkd_env.env.spaces import method_action_table

    return method_action_table()


def methods() -> str:
    from ssdkd_env.engine.config import make_config
    from ssdkd_env.methods import METHODS

    rows = []
    for name in METHODS.names():
        cfg = make_config("digits", name)
        description = METHODS.get(name).description
        rows.append([f"`{name}`", cfg.round_loop, cfg.synthesizer, cfg.memory, cfg.distiller.kd_loss, description])
    return _table(["method", "round loop", "synthesizer", "memory", "KD loss", "what defines it"], rows)


def components() -> str:
    from ssdkd_env.losses import KD_LOSSES
    from ssdkd_env.methods import METHODS, ROUND_LOOPS
    from ssdkd_env.replay import MEMORIES
    from ssdkd_env.replay.base import NO_MEMORY
    from ssdkd_env.synthesis import SYNTHESIZERS
    from ssdkd_env.tasks.kinds import TASK_KINDS

    families: list[tuple[str, str, str, Any]] = [
        ("synthesizer: makes a round's samples", "ssdkd_env.synthesis.BaseSynthesizer", "SYNTHESIZERS", SYNTHESIZERS),
        ("memory: keeps samples between rounds", "ssdkd_env.replay.BaseMemory", "MEMORIES", MEMORIES),
        ("KD loss: per-sample discrepancy", "ssdkd_env.losses.KDLoss", "KD_LOSSES", KD_LOSSES),
        ("round loop: owns one round", "ssdkd_env.methods.RoundLoop", "ROUND_LOOPS", ROUND_LOOPS),
        ("task kind: reads model outputs", "ssdkd_env.tasks.kinds.TaskKind", "TASK_KINDS", TASK_KINDS),
        ("method: a preset naming components", "ssdkd_env.methods.register_method", "METHODS", METHODS),
    ]
    rows = []
    for what, interface, registry, reg in families:
        names = [f"`{n}`" for n in reg.names()] + ([f"`{NO_MEMORY}` (no memory)"] if reg is MEMORIES else [])
        rows.append([what, f"`{interface}`", f"`{registry}`", ", ".join(names)])
    return _table(["component", "interface", "registry", "registered"], rows)


def component_details() -> str:
    from ssdkd_env.losses import KD_LOSSES
    from ssdkd_env.methods import ROUND_LOOPS
    from ssdkd_env.replay import MEMORIES
    from ssdkd_env.synthesis import SYNTHESIZERS
    from ssdkd_env.tasks.kinds import TASK_KINDS

    def options(component: Any) -> str:
        """The component's own settings (its ``Config``) with their defaults."""
        fields = dataclasses.fields(component.Config())
        return ", ".join(f"`{f.name}={f.default!r}`" for f in fields) or "none"

    rows: list[list[str]] = []
    families: list[tuple[str, Any]] = [("synthesizer", SYNTHESIZERS), ("memory", MEMORIES), ("round loop", ROUND_LOOPS)]
    for family, reg in families:
        rows += [[family, f"`{n}`", _first_line(reg.get(n)), options(reg.get(n))] for n in reg.names()]
    rows += [["KD loss", f"`{n}`", KD_LOSSES.get(n).description, "none"] for n in KD_LOSSES.names()]
    rows += [["task kind", f"`{n}`", _first_line(type(TASK_KINDS.get(n))), "none"] for n in TASK_KINDS.names()]
    return _table(["family", "name", "what it does", "options (defaults)"], rows)


def tasks() -> str:
    from ssdkd_env.tasks.registry import TASKS

    rows = []
    for name in sorted(TASKS):
        t = TASKS[name]
        shape = "x".join(map(str, t.input_shape))
        cpu = f"`{t.cpu_variant}`" if t.cpu_variant else ""
        data = "ships with a package" if not t.needs_data_root else "`--data-root`"
        rows.append(
            [f"`{name}`", t.kind, t.num_classes, shape, f"`{t.teacher_arch}`", f"`{t.student_arch}`", cpu, data,
             t.description]
        )
    header = ["task", "kind", "classes", "input", "teacher", "student", "on a CPU", "data", "description"]
    return _table(header, rows)


def models() -> str:
    import torch

    from ssdkd_env.models.registry import get_model_entry, list_models
    from ssdkd_env.tasks.registry import TASKS

    channels = {a: t.input_shape[0] for t in TASKS.values() for a in (t.teacher_arch, t.student_arch)}
    rows = []
    for name in list_models():
        entry = get_model_entry(name)
        with torch.device("meta"):  # shapes only: counting parameters allocates nothing
            model = entry.builder(10, channels.get(name, 3))
        side = str(entry.fixed_input_size) if entry.fixed_input_size else f"{entry.min_input_size}+"
        kind = "segmentation" if entry.dense else "classifier"
        rows.append([f"`{name}`", kind, f"{sum(p.numel() for p in model.parameters()):,}", side, entry.description])
    return _table(["name", "outputs", "parameters (10 classes)", "input side", "description"], rows)


def agents() -> str:
    from agents.registry import AGENTS

    rows = []
    for name in sorted(AGENTS):
        cls = AGENTS[name]
        hyper = ", ".join(f"`{k}={v!r}`" for k, v in getattr(cls, "defaults", {}).items())
        rows.append([f"`{name}`", "yes" if cls.learns else "no", ", ".join(cls.action_modes), _first_line(cls), hyper])
    return _table(["agent", "learns", "action forms (first: preferred)", "what it is", "hyper-parameters"], rows)


def regimes() -> str:
    from ssdkd_env.env.regimes import DEFAULT_REGIMES, REGIMES

    rows = []
    for name in REGIMES.names():
        r = REGIMES.get(name)
        default_for = ", ".join(f"`{t}`" for t, n in DEFAULT_REGIMES.items() if n == name)
        rows.append([f"`{name}`", r.description, r.total_steps or "the task's", default_for or "every other task"])
    return _table(["regime", "what it sets", "learning steps", "default for"], rows)


def gym_ids() -> str:
    import gymnasium as gym

    import ssdkd_env  # noqa: F401  (registers the ids)

    rows = []
    for env_id in sorted(i for i in gym.registry if i.startswith("SSDKD")):
        spec = gym.registry[env_id]
        kwargs = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
        rows.append([f"`{env_id}`", f"`{spec.entry_point}`", kwargs or "none: give them to `gym.make`"])
    return _table(["id", "entry point", "keyword arguments"], rows)


def public() -> str:
    """What ``import ssdkd_env`` exposes (its ``__all__``), each with its home module and first docstring line."""
    import ssdkd_env

    rows = []
    for name in ssdkd_env.__all__:
        obj = getattr(ssdkd_env, name)
        home = getattr(obj, "__module__", None) if callable(obj) else None
        what = _first_line(obj) if home else (f"the {obj.kind} registry" if hasattr(obj, "kind") else "")
        rows.append([f"`{name}`", f"`{home}`" if home else type(obj).__name__, what])
    return _table(["name", "defined in", "what it is"], rows)


def zoo() -> str:
    from ssdkd_env.zoo import zoo_cards

    rows = []
    for c in zoo_cards():
        score = f"{c.metric} {c.test_score:.4f}"
        rows.append(
            [f"`{c.task}`", f"`{c.arch}`", score, c.data, f"`{c.command}`", c.date, c.torch, f"{c.size_bytes:,}",
             f"`{c.sha256[:12]}…`"]
        )
    header = ["task", "arch", "test score", "data", "command", "date", "torch", "bytes", "sha256"]
    return _table(header, rows)


def _load_script(name: str) -> ModuleType:
    """Import train/NAME.py as a module; its ``main`` does not run (the scripts guard it)."""
    module_name = f"train_script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "train" / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ValueError(f"no script train/{name}.py")
    module = sys.modules[module_name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli(script: str) -> str:
    """The flags of train/SCRIPT.py, from its ``build_parser()``."""
    parser: argparse.ArgumentParser = _load_script(script).build_parser()
    formatter = parser._get_formatter()
    rows = []
    for act in parser._actions:
        if isinstance(act, argparse._HelpAction):
            continue
        flags = ", ".join(f"`{s}`" for s in act.option_strings) or f"`{act.dest}` (positional)"
        if act.choices is not None:
            flags += " {" + ",".join(map(str, act.choices)) + "}"
        rows.append([flags, formatter._expand_help(act) if act.help else ""])  # the help adds the default
    return _table(["flag", "meaning"], rows)


def scripts() -> str:
    """A section per train/*.py script that has a ``build_parser()``: its description and flags."""
    sections = []
    for path in sorted((ROOT / "train").glob("*.py")):
        module = _load_script(path.stem)
        if not hasattr(module, "build_parser"):
            continue
        description = module.build_parser().description or ""
        sections.append(f"## `{path.name}`\n\n{description}\n\n{cli(path.stem)}")
    return "\n\n".join(sections)


TABLES: dict[str, Callable[[], str]] = {
    f.__name__.replace("_", "-"): f
    for f in (
        observation, action, method_actions, methods, components, component_details, tasks, models, agents, regimes,
        gym_ids, zoo, public, scripts
    )
}


def render(name: str, arg: str | None = None) -> str:
    """The Markdown of table ``name`` (``arg``: the script of a ``cli`` table)."""
    if name == "cli" and arg:
        return cli(arg)
    if name in TABLES and arg is None:
        return TABLES[name]()
    asked = f"{name} {arg}" if arg else name
    raise ValueError(f"unknown generated table '{asked}'; known: cli SCRIPT, {', '.join(TABLES)}")


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs event: replace every table marker of a page."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # agents/ and the scripts' imports, also from a plain checkout
    return MARKER.sub(lambda m: render(m.group(1), m.group(2)), markdown)
