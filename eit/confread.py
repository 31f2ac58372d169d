"""The one YAML loader of the project, and typed reading of what it gives.

Every YAML file the platform reads (server and agent configuration, site registry, standards
data, page texts, alert templates) goes through :func:`read_yaml`. It is safe (plain data only,
no tags that build objects), keeps the line of every key, refuses a key given twice in one
mapping, and bounds what it accepts before building it: nesting depth, digits of a number, the
number of values (aliases cannot blow a small file up) and the file's size. Numbers that are
not finite (``.inf``, ``.nan``, ``1.0e+999``) are refused too. Every problem is a
:class:`~eit.errors.ConfigError` naming file, line and key path, never a traceback, and the
loader reports every problem it finds in one pass.

:class:`Section` reads a mapping with typed getters (``text(key) -> str``,
``text(key, None) -> str | None`` ...), so strict mypy checks everything from the file to the
dataclass. The edge agent and the contract read their files with it (the agent installs with
PyYAML and paho-mqtt only); the server validates its own configuration with pydantic models
on top of the same loader (server/config.py). Unknown keys are errors: a typo such as
``hots:`` must not silently fall back to a default.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol, overload

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from eit.errors import ConfigError, Problem

# Bounds, checked before a value is built.
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_NUMBER_DIGITS = 100  # digits of one number
MAX_VALUES = 1_000_000  # values in one document
MAX_ALIASED_VALUES = 10_000  # values repeated through aliases (a few lines cannot make millions)
MAX_FILE_BYTES = 16 * 1024 * 1024

ENV_PREFIX = "EIT_"

Key = str | int
Loc = tuple[Key, ...]


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


MISSING: Any = _Missing()

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_PLAIN_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
# A list item is named by its id where it has a plain one, unique among its siblings.
_LABEL = re.compile(r"[A-Za-z0-9_-]+")


# -- documents -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML file: its plain data and the line of every key and list item."""

    source: str
    data: Any
    lines: Mapping[Loc, int] = field(default_factory=dict)


def line_of(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of the nearest enclosing key that has one (a missing key is
    reported at the line of the mapping that lacks it)."""
    for end in range(len(loc), -1, -1):
        found = lines.get(loc[:end])
        if found is not None:
            return found
    return None


def key_path(data: Any, loc: Sequence[Key]) -> str:
    """``loc`` as an operator reads it: ``factories[kaeng-khoi-biomass].devices[boiler-1].kind``.

    A list item is named by its ``id`` when it has a plain one that no sibling shares, by its
    index otherwise.
    """
    text = ""
    node: Any = data
    for key in loc:
        if isinstance(node, dict) or not isinstance(key, int) or isinstance(key, bool):
            text = f"{text}.{key}" if text else str(key)
            node = node.get(key) if isinstance(node, dict) else None
        else:
            text += f"[{_item_label(node, key)}]"
            node = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
    return text


def _item_label(items: Any, index: int) -> str:
    if not isinstance(items, list) or not 0 <= index < len(items):
        return str(index)
    item = items[index]
    ident = item.get("id") if isinstance(item, dict) else None
    if not isinstance(ident, str) or not _LABEL.fullmatch(ident):
        return str(index)
    same = sum(1 for other in items if isinstance(other, dict) and other.get("id") == ident)
    return ident if same == 1 else str(index)


def read_yaml(path: Path | str, source: str | None = None) -> Document:
    """Read and parse a YAML file (``source`` names it in errors; default: its path)."""
    path = Path(path)
    source = str(path) if source is None else source
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(source, "", f"{size} bytes, more than the {MAX_FILE_BYTES} bytes allowed")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror}") from None
    return parse_yaml(text, source)


def load_yaml(path: Path | str, source: str | None = None) -> Any:
    """The plain data of a YAML file (for data files read without a :class:`Section`)."""
    return read_yaml(path, source).data


def parse_yaml(text: str, source: str) -> Document:
    """Parse YAML text; every problem found is reported at once."""
    loader = _new_loader(text)
    try:
        try:
            node = loader.get_single_node()
        except _TooDeep as deep:
            shown = key_path(None, deep.loc[:8]) + ("..." if len(deep.loc) > 8 else "")
            raise ConfigError(source, shown, f"nested deeper than {MAX_DEPTH} levels", deep.line) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark else None
            column = f" (column {mark.column + 1})" if mark else ""
            context = ""
            if exc.context and exc.context_mark is not None:
                context = f", {exc.context} at line {exc.context_mark.line + 1}"
            raise _SyntaxProblem(source, "", f"invalid YAML: {exc.problem}{column}{context}", line) from None
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            char = f" (#x{exc.character:04x})" if isinstance(exc.character, int) else ""
            raise _SyntaxProblem(source, "", f"invalid YAML: {exc.reason}{char}", line) from None
        except yaml.YAMLError as exc:
            raise _SyntaxProblem(source, "", f"invalid YAML: {exc}") from None
        if node is None:
            return Document(source, None, {(): 1})
        builder = _Builder(loader, source)
        data = builder.build(node, (), 1)
    finally:
        loader.dispose()
    if builder.problems:
        raise ConfigError.of(
            Problem(source, key_path(data, loc), problem, line) for loc, problem, line in builder.problems
        )
    return Document(source, data, builder.lines)


class _SyntaxProblem(ConfigError):
    """Text that is not YAML at all (an EIT_* value is then taken as plain text)."""


class _TooDeep(Exception):
    def __init__(self, loc: Loc, line: int) -> None:
        self.loc = loc
        self.line = line


class _DepthComposer(Composer):
    """PyYAML's composer, composing nodes no deeper than MAX_DEPTH (it recurses, so depth is
    checked as nodes are composed, before any is built)."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._loc: list[Key] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        named = parent is not None and index is not None
        if named:
            self._loc.append(index if isinstance(index, int) else str(getattr(index, "value", "?")))
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                parser: Any = self  # the parser beside this composer (PyYAML's or libyaml's)
                raise _TooDeep(tuple(self._loc), parser.peek_event().start_mark.line + 1)
            node = super().compose_node(parent, index)
            assert node is not None
            return node
        finally:
            self._depth -= 1
            if named:
                self._loc.pop()


class _PythonLoader(Reader, Scanner, Parser, _DepthComposer, SafeConstructor, Resolver):
    """The safe loader in Python (PyYAML's yaml.SafeLoader with the composer above)."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _DepthComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


class _YamlLoader(Protocol):
    def get_single_node(self) -> Node | None: ...
    def construct_object(self, node: Node, deep: bool = False) -> Any: ...
    def dispose(self) -> None: ...


def _new_loader(text: str) -> _YamlLoader:
    if _LibyamlLoader is not None:
        return _LibyamlLoader(text)
    return _PythonLoader(text)


_LibyamlLoader: Callable[[str], _YamlLoader] | None = None
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Libyaml(_DepthComposer, CParser, SafeConstructor, Resolver):
        """The same with libyaml's parser (C, 5x faster) under the Python composer: the events
        are libyaml's, the nodes, lines and bounds are the composer's above."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _DepthComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _LibyamlLoader = _Libyaml


class _Builder:
    """Builds plain data from composed nodes, recording lines and collecting problems."""

    def __init__(self, loader: _YamlLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.lines: dict[Loc, int] = {}
        self.problems: list[tuple[Loc, str, int]] = []
        self.values = 0
        self.aliased_values = 0
        self._built: set[int] = set()

    def problem(self, loc: Loc, text: str, node: Node) -> None:
        self.problems.append((loc, text, node.start_mark.line + 1))

    def build(self, node: Node, loc: Loc, depth: int, aliased: bool = False) -> Any:
        self.values += 1
        aliased = aliased or id(node) in self._built
        self._built.add(id(node))
        if aliased:
            self.aliased_values += 1
        if self.values > MAX_VALUES or self.aliased_values > MAX_ALIASED_VALUES:
            what = f"{MAX_ALIASED_VALUES} values repeated through aliases" if aliased else ""
            what = what or f"{MAX_VALUES} values"
            line = node.start_mark.line + 1
            raise ConfigError(self.source, key_path(None, loc[:8]), f"more than {what}", line)
        if depth > MAX_DEPTH:  # an alias that contains itself
            self.problem(loc[:8], f"nested deeper than {MAX_DEPTH} levels (an alias inside itself?)", node)
            return None
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            return self.scalar(node, loc)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                self.problem(loc, f"unsupported tag {_tag(node.tag)}", node)
                return None
            return [
                self.build(item, (*loc, index), depth + 1, aliased) for index, item in enumerate(node.value)
            ]
        if isinstance(node, MappingNode):
            if node.tag != _MAP_TAG:
                self.problem(loc, f"unsupported tag {_tag(node.tag)}", node)
                return None
            return self.mapping(node, loc, depth, aliased)
        self.problem(loc, "unsupported YAML node", node)
        return None

    def mapping(self, node: MappingNode, loc: Loc, depth: int, aliased: bool) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self.problem(loc, "merge keys (<<) are not supported: write the keys out", key_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(loc, "a key must be text or a number, not a list or mapping", key_node)
                continue
            if key_node.tag == _NULL_TAG:
                self.problem(loc, "a key is empty", key_node)
                continue
            key = self.scalar(key_node, loc)
            if key is None:  # the problem is recorded
                continue
            if key in first_line:
                self.problem(
                    (*loc, key), f"key '{key}' is given twice (lines {first_line[key]} and {line})", key_node
                )
                continue
            first_line[key] = line
            self.lines[(*loc, key)] = line
            result[key] = self.build(value_node, (*loc, key), depth + 1, aliased)
        return result

    def scalar(self, node: ScalarNode, loc: Loc) -> Any:
        if node.tag not in _PLAIN_TAGS:
            self.problem(loc, f"unsupported tag {_tag(node.tag)}", node)
            return None
        if node.tag in (_INT_TAG, _FLOAT_TAG):
            digits = sum(ch.isdigit() for ch in node.value)
            if digits > MAX_NUMBER_DIGITS:
                self.problem(loc, f"a number of {digits} digits (at most {MAX_NUMBER_DIGITS})", node)
                return None
        try:
            value = self.loader.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.problem(loc, f"'{node.value[:40]}' cannot be read ({exc})", node)
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(loc, f"'{node.value[:40]}' is not a finite number", node)
            return None
        return value


def _tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


# -- environment overrides -----------------------------------------------------------------------
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
        value: Any = ""
        if raw != "":
            try:
                value = parse_yaml(raw, f"environment variable {name}").data
            except _SyntaxProblem:
                value = raw
        node[parts[-1]] = value
        origins[".".join(parts)] = name
    return origins


# -- gathering problems --------------------------------------------------------------------------
class Problems:
    """Problems found while reading one or more files, gathered so that one run reports them
    all: read each item inside :meth:`gather`, then call :meth:`check`."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, error: ConfigError) -> None:
        self.found.extend(error.problems)

    @contextmanager
    def gather(self) -> Iterator[None]:
        """Run the block; a ConfigError it raises is recorded and reading goes on after it."""
        try:
            yield
        except ConfigError as exc:
            self.add(exc)

    def check(self) -> None:
        """Raise one ConfigError carrying every problem found, if any."""
        if self.found:
            raise ConfigError.of(self.found)


# -- sections ------------------------------------------------------------------------------------
class Section:
    """A mapping inside a configuration file, remembering where it sits.

    Read keys with the typed getters, then call :meth:`finish` to reject keys nobody read.
    ``path`` is the key path shown in errors; ``loc`` the keys and indexes from the file's top,
    used to find the line (``lines``, from the :class:`Document`) and an EIT_* variable that set
    the value (``origins``).
    """

    def __init__(
        self,
        data: Any,
        source: str,
        path: str = "",
        origins: Mapping[str, str] | None = None,
        *,
        loc: Loc = (),
        lines: Mapping[Loc, int] | None = None,
    ) -> None:
        self.source = source
        self.path = path
        self.loc = loc
        self.lines: Mapping[Loc, int] = lines or {}
        self.origins: Mapping[str, str] = origins or {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self._fail_at(path, loc, f"expected a mapping, got {describe(data)}")
        self.data: dict[str, Any] = data
        self._read: set[str] = set()

    @classmethod
    def of(cls, doc: Document, origins: Mapping[str, str] | None = None) -> Section:
        """The top of a parsed file."""
        return cls(doc.data, doc.source, "", origins, lines=doc.lines)

    # -- locations ----------------------------------------------------------------------------
    def key_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        if not key:
            return self.path
        return f"{self.path}.{key}" if self.path else key

    def _key_loc(self, key: str) -> Loc:
        return self.loc + tuple(part for part in key.split(".") if part) if key else self.loc

    def _fail_at(self, path: str, loc: Loc, problem: str) -> NoReturn:
        env_name = self.origins.get(".".join(str(k) for k in loc))
        if env_name:
            raise ConfigError(f"environment variable {env_name}", path, problem)
        raise ConfigError(self.source, path, problem, line_of(self.lines, loc))

    def fail(self, key: str, problem: str) -> NoReturn:
        """Raise a ConfigError located at ``key`` inside this section ("" for the section)."""
        self._fail_at(self.key_path(key), self._key_loc(key), problem)

    def fail_item(self, key: str, index: int, problem: str) -> NoReturn:
        """Raise a ConfigError located at item ``index`` of the list ``key`` (``hosts[2]``); a
        list set by an EIT_* variable is reported as that variable."""
        env_name = self.origins.get(".".join(str(k) for k in self._key_loc(key)))
        path = f"{self.key_path(key)}[{index}]"
        if env_name:
            raise ConfigError(f"environment variable {env_name}", path, problem)
        self._fail_at(path, (*self._key_loc(key), index), problem)

    @property
    def line(self) -> int | None:
        return line_of(self.lines, self.loc)

    def _child(self, value: Any, key: Key, path: str) -> Section:
        return Section(value, self.source, path, self.origins, loc=(*self.loc, key), lines=self.lines)

    # -- getters -------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str, default: Any = MISSING) -> object:
        """The value as parsed (check its type before use); ``None`` counts as absent."""
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is MISSING:
                self.fail(key, "required key is missing")
            return default
        value: object = self.data[key]
        return value

    @overload
    def text(
        self,
        key: str,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
        hint: str = "",
    ) -> str: ...
    @overload
    def text(
        self,
        key: str,
        default: str,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
        hint: str = "",
    ) -> str: ...
    @overload
    def text(
        self,
        key: str,
        default: None,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
        hint: str = "",
    ) -> str | None: ...
    def text(
        self,
        key: str,
        default: str | None = MISSING,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] | None = None,
        hint: str = "",
    ) -> str | None:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(key, f"expected text, got {describe(value)}")
        text = str(value)
        if choices is not None and text not in choices:
            self.fail(key, f"'{text}' is not one of {', '.join(choices)}")
        if pattern is not None and not pattern.fullmatch(text):
            self.fail(key, f"'{text}' is not valid{': ' + hint if hint else ''}")
        return text

    @overload
    def number(
        self,
        key: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: float | None = None,
    ) -> float: ...
    @overload
    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: float | None = None,
    ) -> float: ...
    @overload
    def number(
        self,
        key: str,
        default: None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: float | None = None,
    ) -> float | None: ...
    def number(
        self,
        key: str,
        default: float | None = MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: float | None = None,
    ) -> float | None:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"expected a number, got {describe(value)}")
        number = float(value)
        if not math.isfinite(number):
            self.fail(key, "must be a finite number")
        if minimum is not None and number < minimum:
            self.fail(key, f"{_fmt(number)} is below the minimum {_fmt(minimum)}")
        if exclusive_minimum is not None and number <= exclusive_minimum:
            self.fail(key, f"{_fmt(number)} must be greater than {_fmt(exclusive_minimum)}")
        if maximum is not None and number > maximum:
            self.fail(key, f"{_fmt(number)} is above the maximum {_fmt(maximum)}")
        return number

    @overload
    def integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int: ...
    @overload
    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int: ...
    @overload
    def integer(
        self, key: str, default: None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None: ...
    def integer(
        self,
        key: str,
        default: int | None = MISSING,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected a whole number, got {describe(value)}")
        if minimum is not None and value < minimum:
            self.fail(key, f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            self.fail(key, f"{value} is above the maximum {maximum}")
        return value

    @overload
    def boolean(self, key: str) -> bool: ...
    @overload
    def boolean(self, key: str, default: bool) -> bool: ...
    @overload
    def boolean(self, key: str, default: None) -> bool | None: ...
    def boolean(self, key: str, default: bool | None = MISSING) -> bool | None:
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {describe(value)}")
        return value

    @overload
    def day(self, key: str) -> date: ...
    @overload
    def day(self, key: str, default: None) -> date | None: ...
    def day(self, key: str, default: None = MISSING) -> date | None:
        """A date written 2026-01-31."""
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return default
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.fail(key, f"expected a date like 2026-01-31, got {describe(value)}")

    def section(self, key: str, *, required: bool = False) -> Section:
        value = self.raw(key, MISSING if required else None)
        return self._child(value, key, self.key_path(key))

    def sections(self, key: str, *, required: bool = False) -> Iterator[Section]:
        """Iterate a list of mappings; each item is named by its id in errors where it has one."""
        value = self.raw(key, MISSING if required else None)
        if value is None:
            return
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {describe(value)}")
        base = self.key_path(key)
        child_loc = (*self.loc, key)
        for index, item in enumerate(value):
            label = _item_label(value, index)
            yield Section(
                item, self.source, f"{base}[{label}]", self.origins, loc=(*child_loc, index), lines=self.lines
            )

    def mapping_sections(self, key: str, *, required: bool = False) -> Iterator[tuple[str, Section]]:
        """Iterate a mapping of name -> mapping."""
        value = self.raw(key, MISSING if required else None)
        if value is None:
            return
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {describe(value)}")
        base = self.key_path(key)
        child_loc = (*self.loc, key)
        for name, item in value.items():
            yield (
                str(name),
                Section(
                    item,
                    self.source,
                    f"{base}.{name}",
                    self.origins,
                    loc=(*child_loc, name),
                    lines=self.lines,
                ),
            )

    @overload
    def str_list(self, key: str) -> list[str]: ...
    @overload
    def str_list(self, key: str, default: list[str]) -> list[str]: ...
    @overload
    def str_list(self, key: str, default: None) -> list[str] | None: ...
    def str_list(self, key: str, default: list[str] | None = MISSING) -> list[str] | None:
        """A list of text; one text alone counts as a list of one."""
        value = self.raw(key, default)
        if value is default and default is not MISSING:
            return default
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"expected a list of text, got {describe(value)}")
        return [str(v) for v in value]

    @overload
    def path_value(self, key: str, base_dir: Path) -> Path: ...
    @overload
    def path_value(self, key: str, base_dir: Path, default: Path) -> Path: ...
    @overload
    def path_value(self, key: str, base_dir: Path, default: None) -> Path | None: ...
    def path_value(self, key: str, base_dir: Path, default: Path | None = MISSING) -> Path | None:
        """A file path; relative paths are taken from the configuration file's folder."""
        if not self.has(key) and default is not MISSING:
            self._read.add(key)
            return default
        return resolve_path(self.text(key), base_dir)

    def secret(self, key: str, base_dir: Path) -> str | None:
        """A secret given as ``key`` (inline), ``key_file`` (a file) or ``key_env`` (a variable).

        The value is never put in an error message.
        """
        for name in (key, f"{key}_file", f"{key}_env"):
            self._read.add(name)
        given = {name: self.data[name] for name in (key, f"{key}_file", f"{key}_env") if self.has(name)}
        try:
            return read_secret(key, given, base_dir)
        except SecretError as exc:
            self.fail(exc.key, exc.problem)

    def finish(self) -> None:
        """Reject keys that no getter read (typos, keys of another version), all of them."""
        unknown = [k for k in self.data if k not in self._read]
        if not unknown:
            return
        known = sorted(self._read)
        hint = f" (known keys here: {', '.join(known)})" if known else ""
        problems = Problems()
        for key in unknown:
            with problems.gather():
                self._fail_at(self.key_path(str(key)), (*self.loc, key), f"unknown key{hint}")
        problems.check()


# -- helpers shared with the server's typed configuration ----------------------------------------
class SecretError(Exception):
    """A secret's three forms given wrongly; ``key`` is the form at fault (never the value)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def read_secret(key: str, given: Mapping[str, object], base_dir: Path) -> str | None:
    """The secret ``key`` from the forms present in ``given``: ``key`` (inline), ``key_file`` (a
    file, relative to ``base_dir``, its text stripped) or ``key_env`` (an environment variable).
    None when none is given. Raises :class:`SecretError` naming the form, never the value."""
    forms = [name for name in (key, f"{key}_file", f"{key}_env") if given.get(name) is not None]
    if len(forms) > 1:
        raise SecretError(forms[1], f"give only one of {', '.join(forms)}")
    if not forms:
        return None
    form = forms[0]
    value = given[form]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SecretError(form, f"expected text, got {describe(value)}")
    if form == key:
        return str(value)
    if form == f"{key}_file":
        path = resolve_path(str(value), base_dir)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(form, f"cannot read {path}: {exc.strerror}") from None
    name = str(value)
    if name not in os.environ:
        raise SecretError(form, f"environment variable {name} is not set")
    return os.environ[name]


def resolve_path(value: str, base_dir: Path) -> Path:
    """A path as written in a configuration file: ``~`` expanded, relative to ``base_dir``."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base_dir / path


def describe(value: object) -> str:
    """A value as an error message names it (``text ('x')``, ``a number (5)``, ``a list``)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ('{value}')"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return f"a date ({value.isoformat()})"
    return type(value).__name__


def _fmt(value: float) -> str:
    return f"{value:g}"
