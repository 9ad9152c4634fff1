"""Components own their settings: each declares a ``Config``, a run's configuration holds each component
as a name plus options checked against it, and the keys of the layout before 2026-12-07 still work."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shlex
from pathlib import Path

import pytest
from helpers import run_as_module

from ssdkd_env.engine import EngineConfig, make_config, replace_nested
from ssdkd_env.engine.config import ROLES, component_config
from ssdkd_env.errors import UserError
from ssdkd_env.methods import METHODS
from ssdkd_env.tasks import list_tasks

ROOT = Path(__file__).resolve().parents[1]
OLD_CONFIG = Path(__file__).parent / "fixtures" / "release-2026-12-07" / "config.json"
OLD_SECTIONS = ("synthesis", "adversarial", "vae", "pixel", "condensed", "real")


def field_names(role: str, name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(component_config(role, name))}  # type: ignore[arg-type]


@pytest.mark.parametrize("method", METHODS.names())
def test_a_configuration_holds_the_options_of_its_own_components_only(method: str) -> None:
    data = make_config("cifar10-cpu", method).to_dict()
    assert not set(OLD_SECTIONS) & set(data)
    for role in ROLES:
        assert set(data[f"{role}_options"]) == field_names(role, data[role]), role
    assert EngineConfig.from_dict(json.loads(json.dumps(data))).to_dict() == data  # what config.json holds reads back


def test_dfad_carries_no_meta_generator_settings_and_its_probe_keeps_the_task_s() -> None:
    config = make_config("cifar10-cpu", "dfad")
    assert "g_steps" not in config.synthesizer_options and config.round_loop_options == {
        "student_steps": 5,
        "replay_ratio": 0.0,
    }
    assert config.probe_inversion.g_steps == 5 and config.probe_inversion.conditional  # cifar10-cpu's tuning
    assert make_config("camvid-cpu", "dfad").synthesizer_options["objective"] == "negative-log1p"


def test_an_option_is_checked_against_its_component_s_config() -> None:
    with pytest.raises(UserError, match=r"unknown option warp of synthesizer 'meta-generator'; valid: nz, ngf"):
        make_config("digits", **{"synthesizer_options.warp": 1})
    with pytest.raises(UserError, match=r"SynthesisConfig.g_steps=0: must be >= 1"):
        make_config("digits", **{"synthesizer_options.g_steps": 0})
    with pytest.raises(UserError, match=r"unknown option g_steps of synthesizer 'adversarial-generator'"):
        make_config("digits", "dfad", **{"synthesizer_options.g_steps": 3})
    with pytest.raises(UserError, match=r"unknown option warp of synthesizer 'meta-generator'"):
        make_config("digits", "dfad", **{"meta-generator.warp": 3})  # a component's key is checked, used or not


def test_a_component_s_key_tunes_it_wherever_a_run_uses_it() -> None:
    ssdkd = make_config("digits", **{"meta-generator.g_steps": 4})
    assert ssdkd.synthesizer_options["g_steps"] == ssdkd.probe_inversion.g_steps == 4
    csmi = make_config("digits", "csmi", **{"meta-generator.g_steps": 4})  # csmi's synthesizer extends it
    assert csmi.synthesizer_options["g_steps"] == 4
    dfad = make_config("digits", "dfad", **{"meta-generator.g_steps": 4, "adversarial.student_steps": 2})
    assert dfad.probe_inversion.g_steps == 4 and dfad.round_loop_options["student_steps"] == 2
    # choosing another component starts it from its own defaults
    pixel = replace_nested(ssdkd, synthesizer="pixel-inversion", **{"synthesizer_options.iterations": 7})
    assert pixel.synthesizer_options["iterations"] == 7 and set(pixel.synthesizer_options) == field_names(
        "synthesizer", "pixel-inversion"
    )


def test_a_file_may_tune_a_component_in_a_section_of_its_name() -> None:
    config = EngineConfig.from_dict(
        {"method": "dfad", "round_loop": "adversarial", "adversarial": {"student_steps": 3}}
    )
    assert config.round_loop_options["student_steps"] == 3
    config = EngineConfig.from_dict({"meta-generator": {"nz": 16}})
    assert config.synthesizer_options["nz"] == config.probe_inversion.nz == 16


@pytest.mark.parametrize(
    ("method", "old", "new"),
    [
        ("ssdkd", "synthesis.g_steps", ["synthesizer_options.g_steps", "probe_inversion.g_steps"]),
        ("dfad", "synthesis.g_steps", ["probe_inversion.g_steps"]),
        ("dfad", "adversarial.nz", ["synthesizer_options.nz"]),
        ("mb-dfkd", "adversarial.replay_ratio", ["round_loop_options.replay_ratio"]),
        ("deepinv", "pixel.iterations", ["synthesizer_options.iterations"]),
        ("ssdkd", "pixel.iterations", []),  # the old layout ignored a section the run did not use
        ("csmi", "condensed.path", ["condensed_path"]),
        ("csmi", "condensed.disc_weight", ["synthesizer_options.disc_weight"]),
        ("kd-real", "real.data_root", ["synthesizer_options.data_root"]),
    ],
)
def test_an_old_key_sets_what_it_set_with_a_one_line_notice(method: str, old: str, new: list[str]) -> None:
    value = "x.pt" if "path" in old or "root" in old else 3
    base = make_config("digits", method)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        config = replace_nested(base, **{old: value})
    changed = sorted(
        f"{key}.{sub}" if isinstance(before, dict) else key
        for key, before in base.to_dict().items()
        for sub in (before if isinstance(before, dict) else [None])
        if (before[sub] if isinstance(before, dict) else before)
        != (config.to_dict()[key][sub] if isinstance(before, dict) else config.to_dict()[key])
    )
    assert changed == sorted(new)
    lines = [line for line in err.getvalue().splitlines() if line]
    assert len(lines) <= 1 and all(line.startswith("notice: ") and old in line for line in lines)


def test_a_config_json_of_the_release_before_reads_into_the_new_layout() -> None:
    """The fixture is the config.json that commit 0e7431d wrote (old sections for every component)."""
    old = json.loads(OLD_CONFIG.read_text())
    assert set(OLD_SECTIONS) <= set(old) and old.pop("seed") == 0
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        config = EngineConfig.from_dict(old)
    assert (
        config.synthesizer_options == old["synthesis"]
        and dataclasses.asdict(config.probe_inversion) == old["synthesis"]
    )
    assert config.memory_options == {} and "notice:" in err.getvalue()


def _recorded_commands() -> list[tuple[str, list[str]]]:
    """Every ``python train/...py`` command of the results and reproducing pages, split into arguments."""
    found = []
    for page in ("docs/results.md", "docs/reproducing.md", "README.md"):
        for command in re.findall(r"`(python train/\w+\.py [^`]*)`", (ROOT / page).read_text()):
            found.append((page, shlex.split(command.replace("\\\n", " "))))
    return found


def test_every_recorded_command_s_settings_still_build() -> None:
    """Each recorded command's --set keys (of any layout) build a configuration for each of its methods."""
    commands = _recorded_commands()
    assert len(commands) > 10
    checked = 0
    err = io.StringIO()
    for page, argv in commands:
        args = dict(zip(argv[2::1], argv[3::1], strict=False))
        sets = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"]
        if not sets:
            continue
        task = args.get("--task", "digits")
        task = {"cifar10": "cifar10-cpu", "camvid": "camvid-cpu"}.get(task, task)
        if task not in list_tasks():
            continue
        methods = (args.get("--methods") or args.get("--method") or "ssdkd").split(",")
        overrides = dict(s.split("=", 1) for s in sets)
        if any(re.fullmatch(r"[A-Z_]+", value) for value in overrides.values()):
            continue  # a placeholder (LOSS) stands for several values
        for method in methods:
            if method not in METHODS or method.isupper():
                continue
            values = {k: json.loads(v) if v[:1].isdigit() else v for k, v in overrides.items()}
            try:
                with contextlib.redirect_stderr(err):
                    make_config(task, method, **values)
            except UserError as exc:
                pytest.fail(f"{page}: {' '.join(argv)}: {exc}")
            checked += 1
    assert checked >= 5, checked


def test_the_readme_walk_through_adds_a_memory_with_its_own_setting(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's "Adding a method" block, run as written: one new class with its Config, registered."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    run_as_module(code.group(1), "README.md#adding-a-method")
    out = capsys.readouterr().out.split("\n")
    assert out[0] == "32" and out[1] == "{'share': 0.25}"
    assert "share-buffer" not in METHODS.names() and "ssdkd-quarter" not in METHODS.names()  # it cleaned up
