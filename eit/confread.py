"""Typed reading of YAML configuration with errors that name the file, the key and the problem.

A hand-written reader instead of a validation framework keeps the edge agent's footprint small
(the agent installs with PyYAML and paho-mqtt only) while giving every error its exact location.
Unknown keys are errors too: a typo such as ``hots:`` must not silently fall back to a default.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

from eit.errors import ConfigError

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


MISSING: Any = _Missing()

ENV_PREFIX = "EIT_"


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; a syntax error names the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"not UTF-8 text ({exc.reason})") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), where, f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"invalid YAML: {exc}") from None


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Overlay ``EIT_SECTION__KEY=value`` variables onto ``data`` (``__`` separates levels).

    Values are parsed as YAML scalars, so ``EIT_MQTT__PORT=1884`` gives an integer. Returns the
    key paths that came from the environment, mapped to the variable that set them, so that an
    error in such a value names the variable instead of the file.
    """
    env = os.environ if environ is None else environ
    origins: dict[str, str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            # Single-level EIT_* variables are reserved for process options (EIT_LOG_LEVEL ...).
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(f"environment variable {name}", "", "empty key segment")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
                node[part] = child
            if not isinstance(child, dict):
                raise ConfigError(
                    f"environment variable {name}", ".".join(parts), f"'{part}' is not a section"
                )
            node = child
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node[parts[-1]] = value
        origins[".".join(parts)] = name
    return origins


class Section:
    """A mapping inside a configuration file, remembering where it sits.

    Read keys with the typed getters, then call :meth:`finish` to reject keys nobody read.
    """

    def __init__(
        self,
        data: Any,
        source: str,
        path: str = "",
        origins: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.path = path
        self.origins: Mapping[str, str] = origins or {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self._fail_at(path, f"expected a mapping, got {_describe(data)}")
        self.data: dict[str, Any] = data
        self._read: set[str] = set()

    # -- locations ----------------------------------------------------------------------------
    def key_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def _fail_at(self, path: str, problem: str) -> NoReturn:
        env_name = self.origins.get(path.replace("[", ".").replace("]", ""))
        if env_name:
            raise ConfigError(f"environment variable {env_name}", path, problem)
        raise ConfigError(self.source, path, problem)

    def fail(self, key: str, problem: str) -> NoReturn:
        """Raise a ConfigError located at ``key`` inside this section."""
        self._fail_at(self.key_path(key), problem)

    # -- getters -------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str, default: Any = MISSING) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is MISSING:
                self.fail(key, "required key is missing")
            return default
        return self.data[key]

    def text(
        self,
        key: str,
        default: Any = MISSING,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
        hint: str = "",
    ) -> Any:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(key, f"expected text, got {_describe(value)}")
        value = str(value)
        if choices is not None and value not in choices:
            self.fail(key, f"'{value}' is not one of {', '.join(choices)}")
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(key, f"'{value}' is not valid{': ' + hint if hint else ''}")
        return value

    def number(
        self,
        key: str,
        default: Any = MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: float | None = None,
    ) -> Any:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"expected a number, got {_describe(value)}")
        value = float(value)
        if not math.isfinite(value):
            self.fail(key, "must be a finite number")
        if minimum is not None and value < minimum:
            self.fail(key, f"{_fmt(value)} is below the minimum {_fmt(minimum)}")
        if exclusive_minimum is not None and value <= exclusive_minimum:
            self.fail(key, f"{_fmt(value)} must be greater than {_fmt(exclusive_minimum)}")
        if maximum is not None and value > maximum:
            self.fail(key, f"{_fmt(value)} is above the maximum {_fmt(maximum)}")
        return value

    def integer(
        self,
        key: str,
        default: Any = MISSING,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> Any:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected a whole number, got {_describe(value)}")
        if minimum is not None and value < minimum:
            self.fail(key, f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            self.fail(key, f"{value} is above the maximum {maximum}")
        return value

    def boolean(self, key: str, default: Any = MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return value
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_describe(value)}")
        return value

    def section(self, key: str, *, required: bool = False) -> Section:
        value = self.raw(key, MISSING if required else None)
        return Section(value, self.source, self.key_path(key), self.origins)

    def sections(self, key: str, *, required: bool = False) -> Iterator[Section]:
        """Iterate a list of mappings."""
        value = self.raw(key, MISSING if required else None)
        if value is None:
            return
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {_describe(value)}")
        base = self.key_path(key)
        for index, item in enumerate(value):
            yield Section(item, self.source, f"{base}[{index}]", self.origins)

    def mapping_sections(self, key: str, *, required: bool = False) -> Iterator[tuple[str, Section]]:
        """Iterate a mapping of name -> mapping."""
        value = self.raw(key, MISSING if required else None)
        if value is None:
            return
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {_describe(value)}")
        base = self.key_path(key)
        for name, item in value.items():
            yield str(name), Section(item, self.source, f"{base}.{name}", self.origins)

    def str_list(self, key: str, default: Any = MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return value
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"expected a list of text, got {_describe(value)}")
        return list(value)

    def path_value(self, key: str, base_dir: Path, default: Any = MISSING) -> Any:
        """A file path; relative paths are taken from the configuration file's folder."""
        value = self.text(key, default)
        if value is default and default is not MISSING:
            return value
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (base_dir / p)

    def secret(self, key: str, base_dir: Path) -> str | None:
        """A secret given as ``key`` (inline), ``key_file`` (a file) or ``key_env`` (a variable).

        The value is never put in an error message.
        """
        inline = self.raw(key, None)
        file_value = self.raw(f"{key}_file", None)
        env_value = self.raw(f"{key}_env", None)
        given = [
            k
            for k, v in ((key, inline), (f"{key}_file", file_value), (f"{key}_env", env_value))
            if v is not None
        ]
        if len(given) > 1:
            self.fail(given[1], f"give only one of {', '.join(given)}")
        if inline is not None:
            if not isinstance(inline, str | int):
                self.fail(key, "expected text")
            return str(inline)
        if file_value is not None:
            path = self.path_value(f"{key}_file", base_dir)
            try:
                return str(path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                self.fail(f"{key}_file", f"cannot read {path}: {exc.strerror}")
        if env_value is not None:
            name = self.text(f"{key}_env")
            if name not in os.environ:
                self.fail(f"{key}_env", f"environment variable {name} is not set")
            return os.environ[name]
        return None

    def finish(self) -> None:
        """Reject keys that no getter read (typos, keys of another version)."""
        unknown = [k for k in self.data if k not in self._read]
        if unknown:
            known = sorted(self._read)
            hint = f" (known keys here: {', '.join(known)})" if known else ""
            self.fail(str(unknown[0]), f"unknown key{hint}")


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ('{value}')"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _fmt(value: float) -> str:
    return f"{value:g}"
