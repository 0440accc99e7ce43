"""Named implementations of one kind: denoisers, samplers, noise schedules, processes, domains.

Every place that turns a config name into an object looks it up in a
:class:`Registry`, so an unknown name gets the same one-line error everywhere
and a new implementation is one ``register`` call next to its definition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """A name -> implementation table.

    Args:
        kind: what the names stand for, as error messages say it (``"model"``, ``"sampler"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding the decorated class or function under ``name`` (which must be new)."""

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def __getitem__(self, name: str) -> T:
        """The implementation ``name``; ValueError naming the registered ones if unknown."""
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {self.names()}")
        return self._items[name]

    def get(self, name: str | None, default: T | None = None) -> T | None:
        return self._items.get(name, default) if name is not None else default

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)
