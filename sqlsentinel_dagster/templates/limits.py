"""The limits of a render: a time budget per render and size estimates checked before an operation runs.

The budget lives in a context variable for the duration of :func:`within_limits`; the sandbox's hooks
(:mod:`.sandbox`) tick it and call the ``check_*`` functions here. No Jinja2 import: the estimates work on
plain Python values.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..errors import TemplateLimitError

__all__ = [
    "FILTER_COUNTS",
    "FILTER_SIZES",
    "MAX_CALL_DEPTH",
    "MAX_RENDER_CHARS",
    "MAX_RENDER_SECONDS",
    "TEXT_FILTERS",
    "Budget",
    "check_binop",
    "check_call",
    "check_size",
    "check_source",
    "check_value",
    "current_budget",
    "measure",
    "measured",
    "within_limits",
]

MAX_RENDER_SECONDS = 1.0
"""Longest a template may take to render, at load (the trial render) and at send: a real message takes
milliseconds."""
MAX_RENDER_CHARS = 100_000
"""Most characters a template may output, and the largest text, list (items) or number (bits) it may make on
the way: more than Slack (40,000 characters) or Teams (28 KB) accept, enough for an email listing hundreds of
rows, small enough to make in a millisecond. Longer template sources are refused too."""
MAX_CALL_DEPTH = 50
"""Deepest nesting of macro and function calls (a macro calling itself without end stops here)."""


@dataclass
class Budget:
    """What is left of one render: its deadline, its ``${VAR}`` values and how deep its calls nest."""

    deadline: float
    variables: Mapping[str, str] | None
    """The ``${VAR}`` values at send time; None for the trial render at load."""
    depth: int = 0
    escape: Callable[[str], str] | None = None
    """How the channel escapes data: applied to every ``{{ value }}`` from the message (not to the template's
    own text, nor to ``${VAR}`` values, nor to output of escaping filters such as ``tojson``)."""

    def tick(self) -> None:
        """Raise :class:`TemplateLimitError` once the deadline has passed."""
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"rendering took longer than {MAX_RENDER_SECONDS:g} s, the limit for a message template"
            )


_BUDGET: ContextVar[Budget] = ContextVar("sqlsentinel_template_budget")


def current_budget() -> Budget:
    """The budget of the render under way (a fresh one outside :func:`within_limits`)."""
    budget = _BUDGET.get(None)
    return budget if budget is not None else Budget(time.monotonic() + MAX_RENDER_SECONDS, None)


@contextmanager
def within_limits(variables: Mapping[str, str] | None, escape: Callable[[str], str] | None = None) -> Iterator[None]:
    """Parse, compile and render within one budget (``escape``: see :attr:`Budget.escape`); Python's own nesting
    limits become limit errors."""
    token = _BUDGET.set(Budget(time.monotonic() + MAX_RENDER_SECONDS, variables, escape=escape))
    try:
        yield
    except (RecursionError, SyntaxError):  # SyntaxError: Python refuses the compiled template's nesting
        raise TemplateLimitError("the template nests too deeply (blocks, expressions or calls)") from None
    finally:
        _BUDGET.reset(token)


def check_source(source: str) -> None:
    """Refuse a template source longer than :data:`MAX_RENDER_CHARS`."""
    if len(source) > MAX_RENDER_CHARS:
        raise TemplateLimitError(
            f"the template is {len(source):,} characters long; at most {MAX_RENDER_CHARS:,} are allowed"
        )


def _too_big(what: str) -> TemplateLimitError:
    return TemplateLimitError(
        f"the template makes {what} of more than {MAX_RENDER_CHARS:,} {_UNITS[what]}, the limit for a message template"
    )


_UNITS = {"a text": "characters", "a list": "items", "a number": "bits"}


def check_size(size: int, what: str = "a text") -> None:
    """Refuse ``what`` (a text, a list or a number) of ``size`` characters, items or bits past the limit."""
    if size > MAX_RENDER_CHARS:
        raise _too_big(what)


def check_value(value: Any) -> None:
    """A value the template made (after the fact: for operations that cannot multiply sizes)."""
    if isinstance(value, str | bytes):
        check_size(len(value))
    elif isinstance(value, list | tuple | dict | set):
        check_size(len(value), "a list")
    elif isinstance(value, int):
        check_size(value.bit_length(), "a number")


def measure(value: Any, indent: int = 0) -> int:
    """How many characters ``value`` takes as text (``str()``, JSON), ``indent`` per nesting level on each
    item; stops counting past MAX_RENDER_CHARS, so it costs at most that many steps whatever the value."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and total <= MAX_RENDER_CHARS:
        item, depth = stack.pop()
        total += depth * indent
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, Mapping | list | tuple | set | frozenset):
            total += 2
            if len(item) > MAX_RENDER_CHARS:
                return len(item)
            children = itertools.chain.from_iterable(item.items()) if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
        else:
            total += 1
    return total


def measured(value: Any) -> Any:
    """``value``, listed first if it is an iterator, once its text is known to be within the limit (a text is
    taken as it is: turning it into text makes nothing larger)."""
    if isinstance(value, Iterator):
        value = list(itertools.islice(value, MAX_RENDER_CHARS + 1))
        check_size(len(value), "a list")
    if not isinstance(value, str | bytes):
        check_size(measure(value))
    return value


def _int(value: Any) -> int:
    return abs(value) if isinstance(value, int) else len(value) if isinstance(value, str) else 0


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


_PERCENT_SPEC = re.compile(r"%[^a-zA-Z%]*")
_BRACE_SPEC = re.compile(r"\{[^{}]*\}")


def _format_size(fmt: str | bytes, args: Iterable[Any]) -> int:
    """The most ``fmt % args`` or ``fmt.format(*args)`` can make: widths and precisions count in full."""
    text = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
    specs = [*_PERCENT_SPEC.findall(text), *_BRACE_SPEC.findall(text)]
    size = len(text) + sum(int(n) for spec in specs for n in re.findall(r"\d+", spec))
    values = list(args)
    if any("*" in spec for spec in specs) or re.search(r"\{[^{}]*\{", text):  # widths taken from the arguments
        size += sum(_int(v) for v in values if isinstance(v, int))
    return size + sum(measure(v) for v in values)


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(text, str | bytes) or not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return 0
    times = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * max(0, len(new) - len(old))


def _width(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: int) -> int:
    return _int(_arg(args, kwargs, index, name, default))


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _indent_size(a: tuple[Any, ...], k: Mapping[str, Any]) -> int:
    text = str(a[0])
    return len(text) + _lines(text) * _width(a, k, 1, "width", 4)


def _wordwrap_size(a: tuple[Any, ...], k: Mapping[str, Any]) -> int:
    text, wrap = str(a[0]), str(_arg(a, k, 3, "wrapstring", None) or "\n")
    return len(text) + (len(text) // max(1, _width(a, k, 1, "width", 79)) + _lines(text)) * len(wrap)


def _join_size(items: Any, separator: Any) -> int:
    return measure(items) + len(str(separator)) * (len(items) if isinstance(items, Sized) else 0)


_Size = Callable[[tuple[Any, ...], Mapping[str, Any]], int]

FILTER_SIZES: dict[str, _Size] = {
    "center": lambda a, k: max(len(str(a[0])), _width(a, k, 1, "width", 80)),
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "replace": lambda a, k: _replace_size(str(a[0]), _arg(a, k, 1, "old", ""), _arg(a, k, 2, "new", ""), -1),
    "join": lambda a, k: _join_size(a[0], _arg(a, k, 1, "d", "")),
    "format": lambda a, k: _format_size(str(a[0]), [*a[1:], *k.values()]),
    "tojson": lambda a, k: measure(a[0], _width(a, k, 1, "indent", 0)),
    "pprint": lambda a, k: measure(a[0], 1),
}
"""Filters whose result size follows from their arguments (``a[0]`` is the filtered value)."""
FILTER_COUNTS: dict[str, _Size] = {
    "batch": lambda a, k: _width(a, k, 1, "linecount", 0) if _arg(a, k, 2, "fill_with", None) is not None else 0,
    "slice": lambda a, k: _width(a, k, 1, "slices", 0),
}
"""Filters that make as many lists as an argument says."""
TEXT_FILTERS = frozenset(
    {"capitalize", "center", "e", "escape", "forceescape", "format", "indent", "join", "lower", "pprint"}
    | {"replace", "safe", "string", "striptags", "title", "tojson", "trim", "truncate", "upper", "urlencode"}
    | {"urlize", "wordcount", "wordwrap", "xmlattr"}
)
"""Filters that turn their value into text: a list or mapping given to them is measured first."""

_Method = Callable[[Any, tuple[Any, ...], Mapping[str, Any]], int]


def _padded(s: Any, a: tuple[Any, ...], k: Mapping[str, Any]) -> int:
    return max(len(s), _width(a, k, 0, "width", 0))


def _translated(s: Any, a: tuple[Any, ...], k: Mapping[str, Any]) -> int:
    table = a[0] if a else None
    return len(s) * max((measure(v) for v in table.values()), default=1) if isinstance(table, Mapping) else 0


# Methods of str and bytes whose result size follows from their arguments (s is the text).
_TEXT_METHOD_SIZES: dict[str, _Method] = {
    "center": _padded,
    "ljust": _padded,
    "rjust": _padded,
    "zfill": _padded,
    "expandtabs": lambda s, a, k: (
        len(s) + s.count("\t" if isinstance(s, str) else b"\t") * _width(a, k, 0, "tabsize", 8)
    ),
    "replace": lambda s, a, k: _replace_size(
        s, _arg(a, k, 0, "old", ""), _arg(a, k, 1, "new", ""), _arg(a, k, 2, "count", -1)
    ),
    "join": lambda s, a, k: _join_size(a[0], s) if a else 0,
    "translate": _translated,
}


def check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a call whose result would be too large; return the arguments (an iterator to join, listed)."""
    name = getattr(obj, "__name__", "")
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str | bytes) and name in _TEXT_METHOD_SIZES:
        if name == "join" and args:
            args = (measured(args[0]), *args[1:])
        check_size(_TEXT_METHOD_SIZES[name](owner, args, kwargs))
    elif name in ("format", "format_map"):  # str.format, wrapped by the sandbox
        fmt = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
        if isinstance(fmt, str):
            values = [*args, *kwargs.values()] if name == "format" else list(args[0].values()) if args else []
            check_size(_format_size(fmt, values))
    elif name == "generate_lorem_ipsum":  # the lipsum() global
        words = _int(_arg(args, kwargs, 0, "n", 5)) * _int(_arg(args, kwargs, 3, "max", 100))
        check_size(words * 12)
    elif isinstance(owner, list) and name == "extend" and args and isinstance(args[0], Sized):
        check_size(len(owner) + len(args[0]), "a list")
    return args


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` when it would make a text, list or number past the limit."""
    if operator == "*":
        if isinstance(left, int) and not isinstance(right, int):
            left, right = right, left
        if isinstance(left, str | bytes) and isinstance(right, int):
            check_size(len(left) * right)
        elif isinstance(left, list | tuple) and isinstance(right, int):
            check_size(len(left) * right, "a list")
        elif isinstance(left, int) and isinstance(right, int):
            check_size(left.bit_length() + right.bit_length(), "a number")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        check_size(left.bit_length() * min(right, MAX_RENDER_CHARS + 1), "a number")
    elif operator == "%" and isinstance(left, str | bytes):
        values = right if isinstance(right, tuple) else right.values() if isinstance(right, Mapping) else [right]
        check_size(_format_size(left, values))
