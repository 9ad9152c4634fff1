"""Entry-point plugins: packages that add methods, components, tasks, models or agents.

An installed package declares an entry point in the group ``ssdkd_env.plugins`` naming a module
(``my_pkg.ssdkd``) or a function (``my_pkg.ssdkd:register``); the module is imported, and the
function called without arguments, and whatever they register with the registries is there like
a built-in part. Plugins load once per process, lazily: at the first registry lookup (``get``,
``in``, listing, iteration) after ``import ssdkd_env`` has finished, so a plugin may import any
of ``ssdkd_env`` and ``agents``. A plugin that fails to load is skipped with one
:class:`PluginWarning` line naming it and the error; everything else keeps working.
"""

from __future__ import annotations

import warnings
from importlib import metadata

GROUP = "ssdkd_env.plugins"

_state = {"enabled": False, "loaded": False}


class PluginWarning(UserWarning):
    """A plugin could not be loaded (it is skipped)."""


def enable() -> None:
    """Allow loading from now on (``ssdkd_env/__init__.py`` calls this once it is fully imported)."""
    _state["enabled"] = True


def load_plugins() -> None:
    """Import every plugin of :data:`GROUP`, once; a no-op before :func:`enable` and after the first call."""
    if not _state["enabled"] or _state["loaded"]:
        return
    _state["loaded"] = True  # set first: lookups made while a plugin imports see what is registered so far
    seen: set[tuple[str, str]] = set()
    for entry in metadata.entry_points(group=GROUP):
        if (entry.name, entry.value) in seen:  # one distribution found twice on sys.path
            continue
        seen.add((entry.name, entry.value))
        try:
            loaded = entry.load()
            if callable(loaded):
                loaded()
        except Exception as exc:  # a broken plugin must not stop every script
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            warnings.warn_explicit(
                f"plugin '{entry.name}' ({entry.value}) failed to load and is skipped: {reason}",
                PluginWarning,
                filename=GROUP,
                lineno=0,
            )


def reset() -> None:
    """Load the plugins again at the next lookup (tests that install a plugin mid-session)."""
    _state["loaded"] = False
