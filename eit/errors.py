"""Error types raised at the platform's boundaries. Each names what is wrong and where."""

from __future__ import annotations


class EitError(Exception):
    """Base class of every error the platform raises on purpose."""


class ConfigError(EitError):
    """A configuration or registry file holds something the platform cannot use.

    The message names the file, the key path inside it and the problem, so an operator can fix
    it without reading code: ``site.yaml: factories[1].devices[0].kind: 'chimney' is not one of
    stack, effluent, ambient, energy``.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


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
