"""Load YAML into plain Python values while remembering the line of every value.

PyYAML's ``safe_load`` forgets where values came from and silently keeps the last of two equal keys; this
loader composes the node tree instead, so every error can say ``alerts.yaml:14`` and duplicate keys are
reported rather than lost.

It is also where a hostile file is stopped, each limit once, with a located problem instead of a hang or a
traceback: the size of the text (:data:`MAX_FILE_BYTES`), how deeply values nest (:data:`MAX_DEPTH`), and how
many values the document expands to once aliases are followed (:data:`MAX_VALUES`: a 500-byte "billion
laughs" file otherwise expands to a billion values).
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_VALUES", "Located", "Unreadable", "load_located", "read_text"]

Path = tuple[str | int, ...]

MAX_FILE_BYTES = 10 * 1024 * 1024
"""Largest alerts file read (10 MiB): 6x the 5,000-alert benchmark file (1.7 MB)."""
MAX_VALUES = 1_000_000
"""Most values (mappings, lists and scalars, every alias counted as the values it repeats) a file may expand
to: 4x what a file of MAX_FILE_BYTES written without aliases holds (about 25,000 values per MB)."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and lists; an alerts file needs about 6 levels."""

# libyaml's composer is about ten times faster; it keeps the same marks (lines) as the pure-Python one.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Located:
    """A YAML document as Python values, with the 1-based line of each value and the problems found."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[tuple[int, Path, str]] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """Return the line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 0


class Unreadable(Exception):
    """Raised by :func:`read_text` when a file is too large or is not UTF-8 text; ``line`` says where (0: the
    whole file)."""

    def __init__(self, line: int, cause: str) -> None:
        super().__init__(cause)
        self.line = line


_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text: UTF-8 (a byte order mark is allowed), at most MAX_FILE_BYTES, never read further.

    Raises OSError when the file cannot be opened, :class:`Unreadable` when it is too large or not UTF-8.
    """
    with open(path, "rb") as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise Unreadable(0, _too_large(max(os.fstat(stream.fileno()).st_size, len(data)), "bytes"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
        if encoding:
            raise Unreadable(0, f"it is {encoding} text (it starts with a byte order mark); save it as UTF-8") from None
        line = data.count(b"\n", 0, exc.start) + 1
        raise Unreadable(line, f"it is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None


def _too_large(size: int, unit: str) -> str:
    limit = f"{MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES // 2**20} MiB)"
    return f"the file is {size:,} {unit} long; at most {limit} are allowed"


def load_located(text: str) -> Located:
    """Parse ``text``; syntax errors and exceeded limits end up in ``problems`` (with their line), not as
    exceptions."""
    if len(text) > MAX_FILE_BYTES:  # a character takes at least a byte
        return Located(data=None, problems=[(0, (), _too_large(len(text), "characters"))])
    if 2 * sum(map(text.count, _SEPARATORS)) + 1 > MAX_VALUES:  # might hold too many values: count them first
        problem = _scan(text)
        if problem:
            return Located(data=None, problems=[problem])
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except RecursionError:  # the pure-Python composer (no libyaml) on very deep nesting
        return Located(data=None, problems=[_scan(text) or (0, (), _too_deep())])
    except yaml.YAMLError as exc:
        return Located(data=None, problems=[_syntax_problem(text, exc)])
    located = Located(data=None)
    if root is not None:
        constructor = yaml.SafeLoader("")
        try:
            located.data = _Converter(located, constructor).convert(root, (), root.start_mark.line + 1)
        except _LimitExceeded as exc:
            located.data, located.lines = None, {}
            located.problems = [(exc.line, (), str(exc))]
        except yaml.constructor.ConstructorError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else 0
            located.problems.append((line, (), f"YAML error: {exc.problem}"))
        finally:
            constructor.dispose()
    return located


# Every value starts after one of these (or at the start), at most two values after each ("{a, b}": a key and
# its null value): twice their count bounds the number of values without parsing.
_SEPARATORS = (",", ":", "-", "?", "[", "{", "]", "}", "\n")


def _too_deep() -> str:
    return f"values nest more than {MAX_DEPTH} levels deep; at most {MAX_DEPTH} are allowed"


def _too_many() -> str:
    return (
        f"the file holds or expands to more than {MAX_VALUES:,} values (YAML aliases repeating large anchors?); "
        f"at most {MAX_VALUES:,} are allowed"
    )


def _syntax_problem(text: str, error: yaml.YAMLError) -> tuple[int, Path, str]:
    """Describe a syntax error, with the pure-Python parser's more precise messages where it is fast enough."""
    if isinstance(error, yaml.MarkedYAMLError) and "maximum nesting depth" in str(error.problem):
        return _scan(text) or (0, (), _too_deep())  # libyaml's own cap (1,000 levels): say where ours is passed
    if len(text) > _PRECISE_SYNTAX_CHARS:
        return _describe(text, error)
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return _scan(text) or (0, (), _too_deep())
    except yaml.YAMLError as exc:
        return _describe(text, exc)
    return (0, (), "YAML syntax error")  # libyaml refused what PyYAML accepts: report without detail


_PRECISE_SYNTAX_CHARS = 1_000_000  # the pure-Python parser reads about 0.5 MB a second


def _describe(text: str, error: yaml.YAMLError) -> tuple[int, Path, str]:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        what = " ".join(part for part in (error.context, error.problem) if part)
        return (mark.line + 1 if mark else 0, (), f"YAML syntax error: {what}")
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        char = error.character if isinstance(error.character, int) else ord(error.character)
        return (line, (), f"YAML syntax error: the character U+{char:04X} is not allowed (is this a text file?)")
    return (0, (), f"YAML syntax error: {error}")


def _scan(text: str) -> tuple[int, Path, str] | None:
    """Where the values first nest deeper than MAX_DEPTH or outnumber MAX_VALUES, read from the parser's events
    (the parser neither recurses nor keeps what it read), or None."""
    depth = count = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.NodeEvent):
                count += 1
                if count > MAX_VALUES:
                    return (line, (), _too_many())
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return (line, (), _too_deep())
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):
            return (exc.problem_mark.line + 1 if exc.problem_mark else 0, (), _too_deep())
    except yaml.YAMLError:
        pass  # a syntax error before any limit: composing reports it
    return None


class _LimitExceeded(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _Converter:
    """Turns the node tree into values, counting every value made: an alias repeats its anchor's node, so a
    few nodes can stand for billions of values."""

    def __init__(self, out: Located, constructor: yaml.SafeLoader) -> None:
        self.out = out
        self.constructor = constructor
        self.count = 0
        self.seen: set[int] = set()

    def convert(self, node: yaml.Node, path: Path, site: int) -> Any:
        """``site``: the line of the innermost node not reached through an alias, reported when a limit is
        exceeded (a node reached through an alias only knows the line of its anchor)."""
        self.count += 1
        if id(node) not in self.seen:
            self.seen.add(id(node))
            site = node.start_mark.line + 1
        if self.count > MAX_VALUES:
            raise _LimitExceeded(site, _too_many())
        collection = isinstance(node, yaml.CollectionNode)
        if collection and len(path) >= MAX_DEPTH:  # the root is level 1, as in _scan
            raise _LimitExceeded(node.start_mark.line + 1, _too_deep())
        out = self.out
        out.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    near = value_node if id(key_node) in self.seen else key_node  # an alias: its anchor is elsewhere
                    message = "a key must be a plain value (text or a number)"
                    out.problems.append((near.start_mark.line + 1, path, message))
                    continue
                key = self.scalar(key_node, path)
                if key is _UNREADABLE:
                    continue
                if key == "<<":
                    out.problems.append((line, path, "YAML merge keys (<<) are not supported"))
                    continue
                key_text = str(key)
                if key_text in result:
                    first = out.lines.get((*path, key_text), 0)
                    out.problems.append((line, (*path, key_text), f"duplicate key (first defined on line {first})"))
                    continue
                out.lines[(*path, key_text)] = line
                result[key_text] = self.convert(value_node, (*path, key_text), site)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i), site) for i, item in enumerate(node.value)]
        value = self.scalar(node, path)
        return None if value is _UNREADABLE else value

    def scalar(self, node: yaml.Node, path: Path) -> Any:
        """The node's value, or _UNREADABLE (and a problem) when its type cannot read it, e.g. an integer of
        more than 4,300 digits (Python's limit) or ``!!timestamp 2020-13-45``."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:
            self.constructor.recursive_objects.pop(node, None)
            kind, cause = str(node.tag).rsplit(":", 1)[-1], str(exc).split(";")[0]
            message = f"YAML error: cannot read this {kind} ({cause}); quote it to keep it as text"
            self.out.problems.append((node.start_mark.line + 1, path, message))
            return _UNREADABLE


_UNREADABLE = object()
