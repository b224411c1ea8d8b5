"""Load YAML into plain Python values while remembering the line of every value.

PyYAML's ``safe_load`` forgets where values came from and silently keeps the last of two equal keys; this
loader composes the node tree instead, so every error can say ``alerts.yaml:14`` and duplicate keys are
reported rather than lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Located", "load_located"]

Path = tuple[str | int, ...]

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


def load_located(text: str) -> Located:
    """Parse ``text``; syntax errors end up in ``problems`` (with their line), not as exceptions."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return Located(data=None, problems=[_syntax_problem(text)])
    located = Located(data=None)
    if root is not None:
        constructor = yaml.SafeLoader("")
        try:
            located.data = _convert(root, (), located, constructor)
        except yaml.constructor.ConstructorError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else 0
            located.problems.append((line, (), f"YAML error: {exc.problem}"))
        finally:
            constructor.dispose()
    return located


def _syntax_problem(text: str) -> tuple[int, Path, str]:
    """Describe a syntax error with the pure-Python parser, whose messages are more precise than libyaml's."""
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return (mark.line + 1 if mark else 0, (), f"YAML syntax error: {what}")
    except yaml.YAMLError as exc:
        return (0, (), f"YAML syntax error: {exc}")
    return (0, (), "YAML syntax error")  # libyaml refused what PyYAML accepts: report without detail


def _convert(node: yaml.Node, path: Path, out: Located, constructor: yaml.SafeLoader) -> Any:
    out.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if key == "<<":
                out.problems.append((key_node.start_mark.line + 1, path, "YAML merge keys (<<) are not supported"))
                continue
            key_text = str(key)
            if key_text in result:
                first = out.lines.get((*path, key_text), 0)
                out.problems.append(
                    (key_node.start_mark.line + 1, (*path, key_text), f"duplicate key (first defined on line {first})")
                )
                continue
            out.lines[(*path, key_text)] = key_node.start_mark.line + 1
            result[key_text] = _convert(value_node, (*path, key_text), out, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), out, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)
