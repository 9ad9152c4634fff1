"""Where a configuration's settings come from: the task's ``engine_defaults`` and ``component_defaults``,
then the method's preset.

``fixtures/engine_configs.json`` pins every (task, method) configuration by a hash of its ``to_dict()``.
It was first written when the task defaults were one table in the engine (commit b971b9b), and written
again when components came to own their options (2026-12-07): then every configuration of the commit
before (55acd2b), read through the old layout's mapping, equalled the new one, except the probe's
inversion of the 30 ``fast2``/``fast5``/``fast10``/``csmi`` configurations whose preset sets other
generator steps than the task (the probe now inverts with the task's tuning for every method). A preset
that skips task defaults (``dfad``, ``mb-dfkd``: no student augmentation) matches it once the task's
values of the skipped keys are put back. After an intended change of a default, rewrite the file with
``python tests/test_task_defaults.py`` and say in the commit which configurations changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from ssdkd_env.engine import TASK_DEFAULTS, EngineConfig, make_config
from ssdkd_env.errors import UserError
from ssdkd_env.methods import METHODS, register_method
from ssdkd_env.tasks import TASKS, get_task, list_tasks, register_task

FIXTURE = Path(__file__).parent / "fixtures" / "engine_configs.json"


def pinned_hash(task: str, method: str) -> str:
    """The hash of ``make_config(task, method)`` with the task's values of the keys the preset skips."""
    skipped = METHODS.get(method).skip_task_defaults
    restored = {key: value for key, value in TASK_DEFAULTS[task].items() if key in skipped}
    text = json.dumps(make_config(task, method, **restored).to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def field_value(config: EngineConfig, path: str) -> object:
    node: object = config
    for key in path.split("."):
        node = getattr(node, key)
    return node


def test_every_configuration_is_as_pinned() -> None:
    pinned = json.loads(FIXTURE.read_text())
    assert sorted(pinned) == sorted(f"{t}/{m}" for t in list_tasks() for m in METHODS.names())
    changed = [key for key, digest in pinned.items() if pinned_hash(*key.split("/")) != digest]
    assert changed == []


@pytest.mark.parametrize("method", ["dfad", "mb-dfkd"])
def test_dfad_games_train_the_student_without_augmentation_on_every_task(method: str) -> None:
    skipped = METHODS.get(method).skip_task_defaults
    assert {f"distiller.{f.name}" for f in dataclasses.fields(EngineConfig().distiller) if "augment" in f.name} <= set(
        skipped
    )
    for task in list_tasks():
        config = make_config(task, method)
        assert not config.distiller.augments, task
        assert all(field_value(config, key) == field_value(EngineConfig(), key) for key in skipped)
    # a setting given to make_config (--set) still applies
    assert make_config("cifar10-cpu", method, **{"distiller.augment_flip": True}).distiller.augment_flip


def test_a_registered_task_brings_its_defaults() -> None:
    spec = dataclasses.replace(get_task("digits"), name="digits-long", engine_defaults={"rounds": 7})
    register_task(spec)
    try:
        assert TASK_DEFAULTS["digits-long"] == {"rounds": 7}
        assert "digits-long" in TASK_DEFAULTS and len(TASK_DEFAULTS) == len(TASKS)
        assert make_config("digits-long").rounds == 7
        assert make_config("digits-long").kd_steps == EngineConfig().kd_steps  # digits' other defaults stay behind
    finally:
        TASKS.pop("digits-long")
    assert "digits-long" not in TASK_DEFAULTS
    with pytest.raises(TypeError):
        get_task("digits").engine_defaults["rounds"] = 1  # type: ignore[index]


def test_a_skipped_key_must_name_a_field() -> None:
    register_method("skips-nothing-real", {}, "test preset", skip_task_defaults=("distiller.augment_shfit",))
    try:
        with pytest.raises(UserError, match="distiller.augment_shfit"):
            make_config("digits", "skips-nothing-real")
    finally:
        METHODS.pop("skips-nothing-real")


if __name__ == "__main__":
    hashes = {f"{t}/{m}": pinned_hash(t, m) for t in list_tasks() for m in METHODS.names()}
    FIXTURE.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
