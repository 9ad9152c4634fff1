"""Named registries: task kinds, tasks, models, synthesizers, memories, losses, round loops, methods,
agents and the rest.

Each family of interchangeable parts keeps one :class:`Registry`; a new part is a new file that
registers itself (or an entry-point plugin, :mod:`ssdkd_env.plugins`), and configurations refer
to it by name. A lookup (``get``, ``[]``, ``in``, iteration, listing) first loads the plugins,
once per process; registering does not.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, ValuesView
from typing import Generic, TypeVar

from ssdkd_env.errors import unknown_name
from ssdkd_env.plugins import load_plugins

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> component, read like a dict. Unknown names are one-line user errors listing the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    @property
    def _loaded(self) -> dict[str, T]:
        """The entries, plugins' included."""
        load_plugins()
        return self._entries

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name`` (names are unique; adding the same object again does nothing)."""
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorator(entry: T) -> T:
            return self.add(name, entry)

        return decorator

    def get(self, name: str) -> T:
        """The entry ``name``; a :class:`~ssdkd_env.errors.UserError` listing the valid names if unknown."""
        entries = self._loaded
        if name not in entries:
            raise unknown_name(self.kind, name, entries)
        return entries[name]

    __getitem__ = get

    def remove(self, name: str) -> None:
        """Unregister ``name`` if registered (tests and notebooks that register throwaway components)."""
        self._entries.pop(name, None)

    def pop(self, name: str) -> T:
        """Unregister ``name`` and return its entry."""
        entry = self.get(name)
        del self._entries[name]
        return entry

    def names(self) -> list[str]:
        """Names in registration order."""
        return list(self._loaded)

    def values(self) -> ValuesView[T]:
        return self._loaded.values()

    def items(self) -> ItemsView[str, T]:
        return self._loaded.items()

    def __contains__(self, name: object) -> bool:
        return name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded)

    def __len__(self) -> int:
        return len(self._loaded)
