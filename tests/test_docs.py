"""The README and the documentation site: every Python example runs, the reference tables are the code's,
the README is short and quotes the results page exactly."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from helpers import run_as_module, saved_random_teacher

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
RESULTS = DOCS / "results.md"
# The lab notebook is a record of past runs: its snippets need a run's outputs and the real data.
PAGES = [README] + sorted(p for p in DOCS.rglob("*.md") if "notebook" not in p.relative_to(DOCS).parts)
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, match in enumerate(FENCE.finditer(page.read_text())):
            found.append((f"{page.relative_to(ROOT)}#{i}", match.group(1)))
    return found


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_tables_hook", DOCS / "hooks" / "tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits_teacher_in_cache(session_cache: Path) -> Path:
    """An untrained digits teacher in the session's cache: the examples build environments, never train one."""
    path = session_cache / "teachers" / "digits" / "cnn" / "teacher.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        saved_random_teacher(path, arch="cnn")
    return path


@pytest.fixture
def in_tmp_cwd(tmp_path: Path) -> Iterator[Path]:
    previous = Path.cwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(previous)


def test_the_pages_have_python_examples() -> None:
    assert len(_examples()) >= 8  # the README's and the site's; a page that lost its fences would show here


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), _examples(), ids=[w for w, _ in _examples()])
def test_every_python_example_runs(where: str, code: str, digits_teacher_in_cache: Path, in_tmp_cwd: Path) -> None:
    run_as_module(code, where)


def test_every_table_marker_renders_and_the_tables_are_the_code_s() -> None:
    from ssdkd_env.env.spaces import action_table, observation_fields
    from ssdkd_env.observation import markdown_table
    from ssdkd_env.replay import ReplayBuffer

    hook = _hook()
    markers = [m for page in PAGES for m in hook.MARKER.finditer(page.read_text())]
    assert {m.group(1) for m in markers} >= {"observation", "action", "methods", "components", "tasks", "models"}
    rendered = {m.group(0): hook.render(m.group(1), m.group(2)) for m in markers}
    assert all(text.startswith(("|", "## ")) for text in rendered.values())
    assert rendered["{{ table: observation }}"] == markdown_table(observation_fields(10, ReplayBuffer))
    assert rendered["{{ table: action }}"] == action_table()
    for method in ("ssdkd", "dfad", "csmi", "kd-real"):
        assert f"| `{method}` |" in rendered["{{ table: methods }}"]
    for component in ("`condensed-pool`", "`vae`", "`real-images`", "`segmentation`"):
        assert component in rendered["{{ table: components }}"]
    with pytest.raises(ValueError, match="unknown generated table"):
        hook.render("no-such-table")


def test_the_cli_reference_lists_every_flag_of_every_script() -> None:
    hook = _hook()
    page = hook.render("scripts")
    for script in sorted((ROOT / "train").glob("*.py")):
        module = hook._load_script(script.stem)
        if not hasattr(module, "build_parser"):
            continue
        assert f"## `{script.name}`" in page
        for action in module.build_parser()._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in page, (script.name, flag)
    assert "train_script_run_agent" in sys.modules  # imported as a module: its main did not run


def test_the_readme_is_a_front_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    commands = ('pip install -e ".[dev]"', "python train/run_agent.py --agent ppo --task digits", "python -m pytest")
    for command in commands:
        assert f"\n{command} " in text


def _headline_rows() -> list[str]:
    section = README.read_text().split("## Headline results", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| claim")]


def test_each_headline_quotes_its_results_entry() -> None:
    results = RESULTS.read_text()
    anchors = set(re.findall(r"^## .* \{#([a-z0-9-]+)\}$", results, re.MULTILINE))
    rows = _headline_rows()
    assert len(rows) >= 3
    for row in rows:
        links = re.findall(r"\]\(docs/results\.md#([a-z0-9-]+)\)", row)
        assert len(links) == 1 and links[0] in anchors, row
        entry = results.split(f"{{#{links[0]}}}", 1)[1].split("\n## ", 1)[0]
        claim, figure = row.split(" | ")[:2]
        for number in NUMBER.findall(figure):
            assert number in entry, (number, links[0])  # the figure is the entry's, not another's
        for number in NUMBER.findall(claim):
            assert number in results, (number, row)
