"""Type and range checks for configuration dataclasses.

A config dataclass subclasses :class:`Validated` and declares bounds with :func:`spec`; building
it (directly, from a dict, a file or ``--set``) checks every field, so a bad value is a one-line
:class:`~ssdkd_env.errors.UserError` before any heavy work.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal, Union

from ssdkd_env.errors import UserError

_HINTS: dict[type, dict[str, Any]] = {}


def spec(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Callable[[], Iterable[str]] | None = None,
) -> Any:
    """A dataclass field with bounds (``ge``/``gt``/``le``/``lt``) or named ``choices`` (a callable,
    so registries are read when the value is checked, after every component has registered)."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    return dataclasses.field(default=default, metadata={k: v for k, v in bounds.items() if v is not None})


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(matches, value converted to ``tp``) for the types config fields use."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp) and isinstance(value, str | int | float), value
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, converted = _coerce(value, arg)
            if ok:
                return True, converted
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return isinstance(value, tp), value
    return True, value  # containers and other annotations are not checked here


def _bounds_error(value: Any, meta: typing.Mapping[str, Any]) -> str | None:
    if "choices" in meta:
        valid = list(meta["choices"]())
        return None if value in valid else f"valid: {', '.join(valid)}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    checks = [
        ("ge", value >= meta.get("ge", -math.inf), ">="),
        ("gt", value > meta.get("gt", -math.inf), ">"),
        ("le", value <= meta.get("le", math.inf), "<="),
        ("lt", value < meta.get("lt", math.inf), "<"),
    ]
    failed = [f"{op} {meta[key]}" for key, ok, op in checks if key in meta and not ok]
    return f"must be {' and '.join(failed)}" if failed else None


class Validated:
    """Mixin for config dataclasses: every field is type- and range-checked when built."""

    def __post_init__(self) -> None:
        cls = type(self)
        if cls not in _HINTS:
            _HINTS[cls] = typing.get_type_hints(cls)
        hints = _HINTS[cls]
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            ok, converted = _coerce(value, hints[f.name])
            if not ok:
                raise UserError(f"config field {cls.__name__}.{f.name}={value!r}: expected {_type_name(hints[f.name])}")
            if converted is not value:
                object.__setattr__(self, f.name, converted)
            problem = None if value is None else _bounds_error(converted, f.metadata)
            if problem:
                raise UserError(f"config field {cls.__name__}.{f.name}={value!r}: {problem}")


@dataclasses.dataclass
class NoOptions(Validated):
    """The options of a component that has no settings of its own."""


def build_options(config_class: type[Validated], options: typing.Mapping[str, Any], owner: str) -> Any:
    """``config_class`` built from ``options`` (a mapping of its fields); ``owner`` names the component
    in the one-line error for an unknown key (with the valid ones) or a bad value."""
    if not isinstance(options, typing.Mapping):
        raise UserError(f"the options of {owner} must be a mapping of its settings, got {options!r}")
    valid = [f.name for f in dataclasses.fields(config_class)]  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in options if key not in valid)
    if unknown:
        listed = ", ".join(valid) if valid else "none (it has no settings)"
        raise UserError(f"unknown option {', '.join(unknown)} of {owner}; valid: {listed}")
    return config_class(**options)
