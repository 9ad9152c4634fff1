"""The command-line layer shared by train/*.py: common flags, --seeds, --out checks, --resume checks."""

from __future__ import annotations

import argparse
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from scripts import ROOT, assert_one_line_error, load_script, run_in_process

from ssdkd_env.common.cli import (
    COMMON_FLAGS,
    DefaultText,
    HelpFormatter,
    add_common_flags,
    common_help,
    config_changes,
    explicit_flags,
    parse_seeds,
    refuse_changes_on_resume,
)
from ssdkd_env.common.io import prepare_out_dir
from ssdkd_env.errors import UserError

SCRIPTS = ("distill", "compare_methods", "compare", "run_agent", "train_teacher", "bench_env")
# the shared flags each script must offer (at least)
EXPECTED_FLAGS = {
    "distill": {"task", "teacher", "data-root", "download", "device", "seed", "rounds", "config", "set", "out"}
    | {"resume", "no-progress"},
    "compare_methods": {"task", "teacher", "data-root", "download", "device", "seeds", "rounds", "config", "set"}
    | {"out", "resume", "no-progress"},
    "compare": {"task", "teacher", "data-root", "download", "device", "seeds", "rounds", "config", "set", "out"}
    | {"no-progress"},
    "run_agent": {"task", "teacher", "data-root", "download", "device", "seed", "rounds", "config", "set", "out"}
    | {"resume", "no-progress"},
    "train_teacher": {"task", "data-root", "download", "device", "seed", "out", "no-progress"},
    "bench_env": {"task", "teacher", "data-root", "download", "device", "rounds", "out", "no-progress"},
}


ALL_SCRIPTS = sorted(path.stem for path in (ROOT / "train").glob("*.py"))


def flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt[2:]: action for action in parser._actions for opt in action.option_strings if opt.startswith("--")}


def parsers_of(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and its subcommands' parsers."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers_of(sub)


# --------------------------------------------------------------------------------------------
# --seeds


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("0,1,2", [0, 1, 2]),
        ("0-4", [0, 1, 2, 3, 4]),
        ("0-2,10,20-21", [0, 1, 2, 10, 20, 21]),
        (" 7 ", [7]),
        ("3,", [3]),
        ("200000-200004", [200000, 200001, 200002, 200003, 200004]),
    ],
)
def test_parse_seeds_reads_lists_and_ranges(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "needle"), [("", "at least one"), ("a,b", "0-4"), ("1.5", "0-4"), ("-1", "0-4")])
def test_parse_seeds_refuses_what_is_not_a_seed_list(text: str, needle: str) -> None:
    with pytest.raises(UserError, match="--seeds") as info:
        parse_seeds(text)
    assert needle in str(info.value)


def test_parse_seeds_refuses_backward_ranges_and_repeats() -> None:
    with pytest.raises(UserError, match="increasing range"):
        parse_seeds("4-2")
    with pytest.raises(UserError, match="seed 2 more than once"):
        parse_seeds("0-3,2")
    with pytest.raises(UserError, match="more than"):
        parse_seeds("0-1000000000")


# --------------------------------------------------------------------------------------------
# the shared flags


def test_add_common_flags_defines_each_flag_once_with_its_help() -> None:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_common_flags(parser, "task", "seeds", "out", "resume", seeds="0-2", out=DefaultText("runs/x/TASK"))
    args = parser.parse_args([])
    assert args.task == "digits" and args.seeds == [0, 1, 2] and args.out is None and args.resume is False
    assert parser.parse_args(["--seeds", "5,7", "--out", "o"]).seeds == [5, 7]
    assert isinstance(parser.parse_args(["--out", "o"]).out, Path)
    text = " ".join(parser.format_help().split())
    assert "(default: runs/x/TASK)" in text and "(default: 0-2)" in text and "(default: None)" not in text
    assert "(default: False)" not in text
    with pytest.raises(ValueError, match="unknown common flags"):
        add_common_flags(argparse.ArgumentParser(), "seed-base")
    with pytest.raises(ValueError, match="not added"):
        add_common_flags(argparse.ArgumentParser(), "task", out="x")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_uses_the_shared_flag_definitions(name: str) -> None:
    parser = load_script(name).build_parser()
    flags = flags_of(parser)
    missing = EXPECTED_FLAGS[name] - set(flags)
    assert not missing, f"{name} lacks {missing}"
    for flag, action in flags.items():
        if flag in COMMON_FLAGS:
            assert action.help == common_help(flag), f"{name} --{flag} has its own help"
    assert "seed-base" not in flags
    parser.format_help()  # every help string formats (no stray % signs)


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_config_is_a_file_in_every_script_that_has_it(name: str) -> None:
    for parser in parsers_of(load_script(name).build_parser()):
        action = flags_of(parser).get("config")
        if action is not None:
            assert action.type is Path and action.metavar == "FILE", f"{name} --config is not a file"
            assert action.help == common_help("config"), f"{name} --config has its own help"


def test_benchmark_names_its_configuration_with_bench() -> None:
    flags = flags_of(load_script("benchmark").build_parser())
    assert "config" not in flags and flags["bench"].required and flags["bench"].metavar == "NAME"


def test_seeds_is_a_list_everywhere_and_compare_defaults_to_five_evaluation_seeds() -> None:
    compare = load_script("compare").build_parser()
    assert compare.parse_args([]).seeds == [200000, 200001, 200002, 200003, 200004]
    assert compare.parse_args(["--seeds", "1-3"]).seeds == [1, 2, 3]
    methods = load_script("compare_methods").build_parser()
    assert methods.parse_args([]).seeds == [0, 1, 2]
    assert methods.parse_args(["--seeds", "0-1,5"]).seeds == [0, 1, 5]


def test_explicit_flags_tell_given_flags_from_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_common_flags(parser, "task", "seed", "set", "resume", "seeds", seeds="0,1")
    assert explicit_flags(parser, []) == set()
    assert explicit_flags(parser, ["--task", "digits", "--resume", "--set", "a=1"]) == {"task", "resume", "set"}
    assert explicit_flags(parser, ["--seed", "0", "--seeds", "3"]) == {"seed", "seeds"}
    assert parser.parse_args([]).seeds == [0, 1]  # the probe left the parser's defaults alone


def test_config_changes_name_every_changed_dotted_key() -> None:
    saved = {"seed": 0, "engine": {"rounds": 3, "action": {"alpha": 0.5}, "tags": (1, 2)}, "teacher": None}
    assert config_changes(saved, json.loads(json.dumps(saved))) == []  # tuples saved as lists are no change
    changed = {"seed": 1, "engine": {"rounds": 3, "action": {"alpha": 0.8}, "tags": [1, 2]}, "teacher": "t.pt"}
    expected = ["engine.action.alpha: 0.5 -> 0.8", "seed: 0 -> 1", "teacher: None -> 't.pt'"]
    assert config_changes(saved, changed) == expected
    with pytest.raises(UserError, match="--resume") as info:
        refuse_changes_on_resume(saved, changed, Path("out/config.json"))
    assert "out/config.json" in str(info.value) and "seed: 0 -> 1" in str(info.value)


# --------------------------------------------------------------------------------------------
# --out


def test_prepare_out_dir_creates_the_folder_and_refuses_unwritable_places(tmp_path: Path) -> None:
    assert prepare_out_dir(tmp_path / "a" / "b").is_dir()
    assert not list((tmp_path / "a" / "b").iterdir())  # the write check leaves nothing behind
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(UserError, match="--out .* is a file"):
        prepare_out_dir(regular)
    with pytest.raises(UserError, match="--out .*cannot be written"):
        prepare_out_dir(regular / "sub")
    with pytest.raises(UserError, match="--teacher-out"):
        prepare_out_dir(regular / "sub", flag="--teacher-out")


def test_prepare_out_dir_refuses_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the kernel refuses to write into. ``chmod`` alone does not stop root (CI containers
    often run as root), so the refusal (EACCES) is what ``os.open`` and ``os.mkdir`` answer inside it."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    real_open, real_mkdir = os.open, os.mkdir

    def refused(path: object) -> bool:
        return Path(os.fsdecode(path)).parent == locked  # type: ignore[arg-type]

    def open_(path: str, *args: Any, **kwargs: Any) -> int:
        if refused(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)

    def mkdir_(path: str, *args: Any, **kwargs: Any) -> None:
        if refused(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir_)
    try:
        with pytest.raises(UserError, match=r"cannot be written to \(Permission denied\)"):
            prepare_out_dir(locked)
        with pytest.raises(UserError, match=r"cannot be written to \(Permission denied\)"):
            prepare_out_dir(locked / "run")
    finally:
        locked.chmod(0o700)
    assert not list(locked.iterdir())


# Each script is asked for a task without a cached teacher or data: an --out checked before any heavy
# work is what the error names, instead of the missing teacher (or a traceback after the run).
UNWRITABLE_OUT_CASES = {
    "distill": ["--task", "cifar10", "--scale", "paper"],
    "compare_methods": ["--task", "cifar10", "--scale", "paper", "--jobs", "2"],
    "compare": ["--task", "cifar10", "--scale", "paper", "--agents", "ssdkd"],
    "run_agent": ["--task", "cifar10", "--scale", "paper", "--agent", "ssdkd"],
    "train_teacher": ["--task", "mnist", "--data-root", "DATA"],
    "bench_env": ["--task", "cifar10", "--scale", "paper"],
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_unwritable_out_is_a_one_line_error_before_any_work(tmp_path: Path, name: str) -> None:
    regular = tmp_path / "file"
    regular.write_text("x")
    args = [a.replace("DATA", str(tmp_path / "no-data")) for a in UNWRITABLE_OUT_CASES[name]]
    result = run_in_process(name, *args, "--out", str(regular / "run"), "--device", "cpu", "--no-progress")
    assert_one_line_error(result, "--out", str(regular / "run"), "cannot be written")
    assert regular.read_text() == "x"


def test_out_that_is_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("x")
    assert_one_line_error(run_in_process("distill", "--out", str(regular)), "--out", "is a file")


def test_bad_seeds_are_one_line_errors() -> None:
    assert_one_line_error(run_in_process("compare_methods", "--seeds", "0,x"), "--seeds", "0-4")
    assert_one_line_error(run_in_process("compare", "--seeds", "3-1"), "--seeds", "increasing range")


# --------------------------------------------------------------------------------------------
# distill.py --resume: the saved configuration wins, changes are refused


def fake_interrupted_run(out: Path, **config_changes_: object) -> dict:
    """What an interrupted distill.py run leaves: config.json and a (here: empty) state.pt."""
    from ssdkd_env.engine import make_config, replace_nested

    config = replace_nested(make_config("digits", "fast"), **config_changes_)
    saved = {"seed": 3, **config.to_dict()}
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(saved))
    torch.save({}, out / "state.pt")
    return saved


def test_distill_resume_restores_the_saved_configuration(tmp_path: Path) -> None:
    distill = load_script("distill")
    out = tmp_path / "run"
    fake_interrupted_run(out, rounds=7, kd_steps=2)
    parser = distill.build_parser()

    def resumed(*argv: str) -> tuple:
        args = parser.parse_args([*argv, "--out", str(out), "--resume"])
        return distill.resumed_config(args, explicit_flags(parser, [*argv, "--out", str(out), "--resume"]), out)

    config, seed = resumed()  # no flags: the saved task, method, seed and fields
    assert (config.task, config.method, config.rounds, config.kd_steps, seed) == ("digits", "fast", 7, 2, 3)
    config, seed = resumed("--method", "fast", "--rounds", "7", "--seed", "3", "--set", "kd_steps=2")  # as saved
    assert (config.rounds, seed) == (7, 3)
    for argv, needle in [
        (("--rounds", "8"), "rounds: 7 -> 8"),
        (("--seed", "0"), "seed: 3 -> 0"),
        (("--method", "ssdkd"), "method: 'fast' -> 'ssdkd'"),
        (("--set", "action.alpha=0.1"), "action.alpha"),
    ]:
        with pytest.raises(UserError, match="--resume") as info:
            resumed(*argv)
        assert needle in str(info.value) and str(out / "config.json") in str(info.value)


def test_distill_resume_with_a_changing_flag_is_a_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    fake_interrupted_run(out, rounds=7)
    result = run_in_process("distill", "--out", str(out), "--resume", "--rounds", "9", "--device", "cpu")
    assert_one_line_error(result, "--resume", "rounds: 7 -> 9", "another --out")
