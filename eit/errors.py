"""Error types raised at the platform's boundaries. Each names what is wrong and where."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class EitError(Exception):
    """Base class of every error the platform raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a configuration file: where (file, line, key path) and what."""

    source: str
    key: str
    problem: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"


class ConfigError(EitError):
    """A configuration or registry file holds something the platform cannot use.

    The message names the file, the line, the key path inside it and the problem, so an operator
    can fix it without reading code: ``site.yaml:14: factories[kaeng-khoi-biomass].devices[boiler-1]
    .kind: 'chimney' is not one of stack, effluent, ambient, energy``. An error may carry several
    problems (:attr:`problems`, one per line of the message); ``source``, ``key``, ``problem`` and
    ``line`` are those of the first.
    """

    def __init__(self, source: str, key: str, problem: str, line: int | None = None) -> None:
        self.problems: tuple[Problem, ...] = (Problem(source, key, problem, line),)
        super().__init__(str(self.problems[0]))

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> ConfigError:
        """One error carrying every problem given (at least one)."""
        found = tuple(problems)
        if not found:
            raise ValueError("ConfigError.of needs at least one problem")
        error = cls(found[0].source, found[0].key, found[0].problem, found[0].line)
        error.problems = found
        error.args = ("\n".join(str(p) for p in found),)
        return error

    @property
    def source(self) -> str:
        return self.problems[0].source

    @property
    def key(self) -> str:
        return self.problems[0].key

    @property
    def problem(self) -> str:
        return self.problems[0].problem

    @property
    def line(self) -> int | None:
        return self.problems[0].line


class DecodeError(EitError):
    """A payload (or part of one) cannot be turned into readings.

    ``reason`` is a short stable code used as a metrics label and stored with the dead letter;
    ``detail`` is the sentence an operator reads; ``where`` points into the payload.
    """

    def __init__(self, reason: str, detail: str, where: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.where = where
        super().__init__(f"{where}: {detail}" if where else detail)
