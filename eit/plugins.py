"""Plugins chosen by name from configuration: store kinds, notifier kinds.

Each kind is one module holding its typed settings class and its factory, exported together as
``KIND = Kind(SettingsClass, factory)``. A :class:`Kinds` table maps each name to its module
and imports the module only when a configuration names it, so the library behind a kind nobody
uses (influxdb-client, apprise) is never loaded. Adding a kind is one module plus its line in
the table; code outside the project (a test, a site's own notifier) adds one with
:meth:`Kinds.register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

S = TypeVar("S")
F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class Kind(Generic[S, F]):
    """One kind: the class its settings are validated into and the factory that builds it."""

    settings: type[S]
    build: F


class Kinds(Generic[S, F]):
    """The kinds of one sort (``sort`` names it in messages), by name."""

    def __init__(self, sort: str, base: type[S], modules: dict[str, str]) -> None:
        self.sort = sort
        self.base = base
        self._modules = dict(modules)

    def names(self) -> tuple[str, ...]:
        """The known names, in the table's order (built-in kinds first)."""
        return tuple(self._modules)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._modules

    def unknown(self, name: object) -> str:
        """The message for a name that is not a kind: it lists the known ones."""
        shown = f"'{name}'" if isinstance(name, str) else repr(name)
        return f"{shown} is not one of {', '.join(self.names())}"

    def get(self, name: str) -> Kind[S, F]:
        """The kind ``name``, its module imported on first use."""
        if name not in self._modules:
            raise KeyError(self.unknown(name))
        module_name = self._modules[name]
        kind: Any = getattr(importlib.import_module(module_name), "KIND", None)
        if not isinstance(kind, Kind) or not issubclass(kind.settings, self.base):
            raise TypeError(
                f"{module_name} must define KIND = Kind(<a {self.base.__name__} subclass>, <factory>)"
            )
        found: Kind[S, F] = kind
        return found

    def register(self, name: str, module: str) -> None:
        """Add the kind ``name``, defined by ``module`` (imported when first used)."""
        if name in self._modules and self._modules[name] != module:
            raise ValueError(f"{self.sort} kind '{name}' is already {self._modules[name]}")
        self._modules[name] = module

    def unregister(self, name: str) -> None:
        self._modules.pop(name, None)

    @contextmanager
    def registered(self, name: str, module: str) -> Iterator[None]:
        """The kind ``name`` while the block runs (tests)."""
        self.register(name, module)
        try:
            yield
        finally:
            self.unregister(name)
