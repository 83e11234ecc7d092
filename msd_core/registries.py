"""Name -> implementation registries: a name in a config picks a function or class.

Every registry of the project (data sets, removal strategies, saliency measures, weighting
schemes, objectives) is a ``NamedRegistry``: entries keep their registration order, which is
the order the CLI's ``choices=`` and the dashboard's widgets show, and an unknown name is a
``ConfigError`` that lists the valid ones.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class NamedRegistry(Generic[T]):
    """An ordered mapping from names to implementations, filled with ``@registry.register(name)``."""

    def __init__(self, what: str):
        self.what = what  # e.g. "weighting": used in error messages
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = obj
            return obj
        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test's or a plugin's entry, when it is done)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The implementation registered as ``name``; a ``ConfigError`` naming the choices otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.what} {name!r}; choose one of {', '.join(self._entries)}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self):
        return self._entries.items()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)
