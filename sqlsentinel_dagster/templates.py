"""Message templates: Jinja2 in a sandbox, with a fixed, documented set of variables.

A template is checked when the alerts file loads (syntax, unknown variables, and a trial render with sample
values), so a typo is a validation error, not a broken notification at 3am. The old SQL Sentinel style
``{alert_name}`` is accepted and read as ``{{ alert_name }}``.

``${NAME}`` and ``${NAME:-default}`` in a template are replaced by the variable's value when the message is
rendered, as data: the value is output as it is and never read as template code.

Rendering is bounded, at load (the trial render) and at send alike, by one environment: at most
:data:`MAX_RENDER_SECONDS` of time, :data:`MAX_RENDER_CHARS` characters of output (and of any text, list or
number the template makes), and :data:`MAX_CALL_DEPTH` nested macro calls. Time is checked at every loop
iteration, call, filter, operator and piece of output; sizes are checked before an operation that multiplies
them (``*``, ``**``, ``%``, ``~``, widths such as ``center(n)``, ``join``, ``replace``, ``indent``).
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .envsubst import _REFERENCE  # the one ${NAME} / ${NAME:-default} syntax
from .errors import SecretResolutionError, SentinelError
from .redact import redact_text

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "MAX_CALL_DEPTH",
    "MAX_RENDER_CHARS",
    "MAX_RENDER_SECONDS",
    "SAMPLE",
    "VARIABLES",
    "TemplateLimitError",
    "TemplateRenderError",
    "render",
    "template_problem",
    "template_variables",
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

VARIABLES: dict[str, str] = {
    "alert_name": "the alert's name",
    "status": "ALERT, OK or ERROR",
    "event": "firing, reminder, resolved, error or test",
    "reason": "why this notification was sent, e.g. 'reminder: repeat interval elapsed'",
    "actual_value": "the query's actual_value column (may be none)",
    "threshold": "the query's threshold column (may be none)",
    "context": "the other columns of the result, a mapping",
    "error": "the error message, for error notifications",
    "description": "the alert's description",
    "severity": "info, warning, error or critical",
    "owners": "the alert's owners, a list",
    "tags": "the alert's tags, a mapping",
    "timestamp": "when the evaluation ran (ISO 8601, UTC)",
    "run_id": "the Dagster run id",
    "run_url": "link to the run in the Dagster UI (empty without webserver_base_url)",
    "silence": "the silence covering the alert, as text (empty if none)",
    "idempotency_key": "a key identifying this notification; the same for every retry",
}

SAMPLE: dict[str, Any] = {
    "alert_name": "orders_late",
    "status": "ALERT",
    "event": "firing",
    "reason": "firing: first notification",
    "actual_value": 7.5,
    "threshold": 5,
    "context": {"endpoint": "/orders"},
    "error": None,
    "description": "No orders loaded in the last hour",
    "severity": "critical",
    "owners": ["team:sales"],
    "tags": {"domain": "sales"},
    "timestamp": "2026-01-01T12:00:00+00:00",
    "run_id": "00000000-0000-0000-0000-000000000000",
    "run_url": "http://localhost:3000/runs/00000000-0000-0000-0000-000000000000",
    "silence": "",
    "idempotency_key": "orders_late/1/firing/0:email",
}


class TemplateRenderError(SentinelError):
    """Raised by :func:`render` when a template fails on a notification's values; the message names the cause,
    with the values of ``${VAR}``s redacted. Each channel turns it into a permanent delivery failure."""


class TemplateLimitError(TemplateRenderError):
    """Raised when rendering a template goes past a limit (time, size, call depth); the message names the limit.
    At load it is reported as a problem of the template."""


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a usable template (syntax, unknown variable, failed or too costly trial render), or
    None. ``${VAR}`` references are accepted and need not be set."""
    from jinja2 import TemplateError, meta

    source = _modernize(text)
    strict = _environment(True)
    try:
        with _limits(None):
            _check_source(source)
            unknown = sorted(meta.find_undeclared_variables(strict.parse(source)) - VARIABLES.keys())
    except TemplateLimitError as exc:
        return f"template error: {exc}"
    except TemplateError as exc:
        return f"template error: {str(exc).splitlines()[0]}"
    if unknown:
        return f"unknown template variable(s) {', '.join(unknown)}; available: {', '.join(VARIABLES)}"
    try:
        with _limits(None):
            strict.from_string(source).render({**SAMPLE, "context": _AnyColumns(SAMPLE["context"])})
    except Exception as exc:  # whatever the template does wrong is its problem, never a crash of the load
        return f"template fails to render with sample values: {exc}"
    return None


def render(text: str, message: Mapping[str, Any], variables: Mapping[str, str] | None = None) -> str:
    """Render ``text`` with the notification's values (missing ones are empty); ``${NAME}`` takes its value from
    ``variables`` (see :func:`template_variables`). Raises :class:`TemplateRenderError` when it fails."""
    values = {name: message.get(name) for name in VARIABLES}
    values["run_url"] = values["run_url"] or ""
    values["silence"] = values["silence"] or ""
    variables = variables or {}
    try:
        with _limits(variables):
            source = _modernize(text)
            _check_source(source)
            return _environment(False).from_string(source).render(values)
    except TemplateRenderError:
        raise
    except Exception as exc:  # a template failing on this notification's values
        cause = redact_text(str(exc), variables.values())
        raise TemplateRenderError(f"{type(exc).__name__}: {cause}") from None


def template_variables(text: str | None, where: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the variables ``text`` refers to as ``${NAME}``, for :func:`render`. An unset variable
    without default raises :class:`SecretResolutionError` naming ``where`` (never a value)."""
    values: dict[str, str] = {}
    for match in _REFERENCE.finditer(text or ""):
        name = match.group("name")
        if name in environ:
            values[name] = environ[name]
        elif match.group("default") is None:
            raise SecretResolutionError(where, name)
    return values


class _AnyColumns(dict[str, Any]):
    """Sample context for the trial render: any column name the template uses exists."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


_OLD_STYLE = re.compile(r"(?<![{$])\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<spec>[^{}'\"\\]*))?\}")


def _modernize(text: str) -> str:
    """SQL Sentinel's ``str.format`` placeholders as Jinja2: ``{alert_name}`` becomes ``{{ alert_name }}`` and
    ``{actual_value:.1f}`` becomes ``{{ "{:.1f}".format(actual_value) }}``, also right before a closing brace (a
    JSON body such as ``{"value": {actual_value}}``). ``${VAR}`` and Jinja2's own ``{{ }}`` are left alone."""

    def jinja(match: re.Match[str]) -> str:
        name, spec = match.group("name"), match.group("spec")
        return f"{{{{ {name} }}}}" if spec is None else f'{{{{ "{{:{spec}}}".format({name}) }}}}'

    return _OLD_STYLE.sub(jinja, text)


# --- The limits: a budget per render, checked by the environment's hooks -------------------------------------


@dataclass
class _Budget:
    deadline: float
    variables: Mapping[str, str] | None
    """The ``${VAR}`` values at send time; None for the trial render at load."""
    depth: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"rendering took longer than {MAX_RENDER_SECONDS:g} s, the limit for a message template"
            )


_BUDGET: ContextVar[_Budget] = ContextVar("sqlsentinel_template_budget")


def _budget() -> _Budget:
    budget = _BUDGET.get(None)
    return budget if budget is not None else _Budget(time.monotonic() + MAX_RENDER_SECONDS, None)


@contextmanager
def _limits(variables: Mapping[str, str] | None) -> Iterator[None]:
    """Parse, compile and render within one budget; Python's own nesting limits become limit errors."""
    token = _BUDGET.set(_Budget(time.monotonic() + MAX_RENDER_SECONDS, variables))
    try:
        yield
    except (RecursionError, SyntaxError):  # SyntaxError: Python refuses the compiled template's nesting
        raise TemplateLimitError("the template nests too deeply (blocks, expressions or calls)") from None
    finally:
        _BUDGET.reset(token)


def _check_source(source: str) -> None:
    if len(source) > MAX_RENDER_CHARS:
        raise TemplateLimitError(
            f"the template is {len(source):,} characters long; at most {MAX_RENDER_CHARS:,} are allowed"
        )


def _too_big(what: str) -> TemplateLimitError:
    return TemplateLimitError(
        f"the template makes {what} of more than {MAX_RENDER_CHARS:,} {_UNITS[what]}, the limit for a message template"
    )


_UNITS = {"a text": "characters", "a list": "items", "a number": "bits"}


def _check_size(size: int, what: str = "a text") -> None:
    if size > MAX_RENDER_CHARS:
        raise _too_big(what)


def _check_value(value: Any) -> None:
    """A value the template made (after the fact: for operations that cannot multiply sizes)."""
    if isinstance(value, str | bytes):
        _check_size(len(value))
    elif isinstance(value, list | tuple | dict | set):
        _check_size(len(value), "a list")
    elif isinstance(value, int):
        _check_size(value.bit_length(), "a number")


def _measure(value: Any, indent: int = 0) -> int:
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


def _measured(value: Any) -> Any:
    """``value``, listed first if it is an iterator, once its text is known to be within the limit (a text is
    taken as it is: turning it into text makes nothing larger)."""
    if isinstance(value, Iterator):
        value = list(itertools.islice(value, MAX_RENDER_CHARS + 1))
        _check_size(len(value), "a list")
    if not isinstance(value, str | bytes):
        _check_size(_measure(value))
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
    return size + sum(_measure(v) for v in values)


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
    return _measure(items) + len(str(separator)) * (len(items) if isinstance(items, Sized) else 0)


_Size = Callable[[tuple[Any, ...], Mapping[str, Any]], int]

# Filters whose result size follows from their arguments (a[0] is the filtered value).
_FILTER_SIZES: dict[str, _Size] = {
    "center": lambda a, k: max(len(str(a[0])), _width(a, k, 1, "width", 80)),
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "replace": lambda a, k: _replace_size(str(a[0]), _arg(a, k, 1, "old", ""), _arg(a, k, 2, "new", ""), -1),
    "join": lambda a, k: _join_size(a[0], _arg(a, k, 1, "d", "")),
    "format": lambda a, k: _format_size(str(a[0]), [*a[1:], *k.values()]),
    "tojson": lambda a, k: _measure(a[0], _width(a, k, 1, "indent", 0)),
    "pprint": lambda a, k: _measure(a[0], 1),
}
# Filters that make as many lists as an argument says.
_FILTER_COUNTS: dict[str, _Size] = {
    "batch": lambda a, k: _width(a, k, 1, "linecount", 0) if _arg(a, k, 2, "fill_with", None) is not None else 0,
    "slice": lambda a, k: _width(a, k, 1, "slices", 0),
}
# Filters that turn their value into text: a list or mapping given to them is measured first.
_TEXT_FILTERS = frozenset(
    {"capitalize", "center", "e", "escape", "forceescape", "format", "indent", "join", "lower", "pprint"}
    | {"replace", "safe", "string", "striptags", "title", "tojson", "trim", "truncate", "upper", "urlencode"}
    | {"urlize", "wordcount", "wordwrap", "xmlattr"}
)

_Method = Callable[[Any, tuple[Any, ...], Mapping[str, Any]], int]


def _padded(s: Any, a: tuple[Any, ...], k: Mapping[str, Any]) -> int:
    return max(len(s), _width(a, k, 0, "width", 0))


def _translated(s: Any, a: tuple[Any, ...], k: Mapping[str, Any]) -> int:
    table = a[0] if a else None
    return len(s) * max((_measure(v) for v in table.values()), default=1) if isinstance(table, Mapping) else 0


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


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a call whose result would be too large; return the arguments (an iterator to join, listed)."""
    name = getattr(obj, "__name__", "")
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str | bytes) and name in _TEXT_METHOD_SIZES:
        if name == "join" and args:
            args = (_measured(args[0]), *args[1:])
        _check_size(_TEXT_METHOD_SIZES[name](owner, args, kwargs))
    elif name in ("format", "format_map"):  # str.format, wrapped by the sandbox
        fmt = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
        if isinstance(fmt, str):
            values = [*args, *kwargs.values()] if name == "format" else list(args[0].values()) if args else []
            _check_size(_format_size(fmt, values))
    elif name == "generate_lorem_ipsum":  # the lipsum() global
        words = _int(_arg(args, kwargs, 0, "n", 5)) * _int(_arg(args, kwargs, 3, "max", 100))
        _check_size(words * 12)
    elif isinstance(owner, list) and name == "extend" and args and isinstance(args[0], Sized):
        _check_size(len(owner) + len(args[0]), "a list")
    return args


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        if isinstance(left, int) and not isinstance(right, int):
            left, right = right, left
        if isinstance(left, str | bytes) and isinstance(right, int):
            _check_size(len(left) * right)
        elif isinstance(left, list | tuple) and isinstance(right, int):
            _check_size(len(left) * right, "a list")
        elif isinstance(left, int) and isinstance(right, int):
            _check_size(left.bit_length() + right.bit_length(), "a number")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _check_size(left.bit_length() * min(right, MAX_RENDER_CHARS + 1), "a number")
    elif operator == "%" and isinstance(left, str | bytes):
        values = right if isinstance(right, tuple) else right.values() if isinstance(right, Mapping) else [right]
        _check_size(_format_size(left, values))


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a filter) with the deadline, its size checked before (by name) and after."""
    passed = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # context, eval context or env
    size, count = _FILTER_SIZES.get(name), _FILTER_COUNTS.get(name)
    measure = name in _TEXT_FILTERS

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _budget().tick()
        if measure and len(args) > passed:
            args = (*args[:passed], _measured(args[passed]), *args[passed + 1 :])
        if size is not None and len(args) > passed:
            _check_size(size(args[passed:], kwargs))
        if count is not None and len(args) > passed:
            _check_size(count(args[passed:], kwargs), "a list")
        result = function(*args, **kwargs)
        _check_value(result)
        return result

    return bounded


def _variable(name: str, default: str | None = None) -> str:
    """The ``${NAME}`` filter: the variable's value as data; a placeholder in the trial render at load."""
    variables = _budget().variables
    if variables is None:
        return default if default is not None else f"<{name}>"
    if name in variables:
        return variables[name]
    if default is not None:
        return default
    raise SecretResolutionError("a message template", name)


_VARIABLE_FILTER = "$variable"  # a name no template can write: only ${NAME} reaches it


@functools.cache
def _environment(strict: bool) -> SandboxedEnvironment:
    """The sandbox: strict for checking templates; lenient when sending, so that a context column missing from
    one evaluation renders empty rather than losing the notification. (Jinja2 is imported on first use.)"""
    from jinja2 import ChainableUndefined, StrictUndefined

    undefined = StrictUndefined if strict else ChainableUndefined
    return _bounded_environment_class()(
        undefined=undefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_finalize,
        extensions=[_variables_extension_class()],
    )


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` before it becomes text: a list or mapping may stand for far more text than it holds."""
    if not isinstance(value, str):
        _check_size(_measure(value))
    return value


@functools.cache
def _bounded_environment_class() -> type[SandboxedEnvironment]:
    """The sandboxed environment with the budget's hooks (a function, so that Jinja2 is imported on first use)."""
    from jinja2 import nodes
    from jinja2.compiler import CodeGenerator, Frame
    from jinja2.runtime import Context
    from jinja2.sandbox import SandboxedEnvironment

    class BoundedCodeGenerator(CodeGenerator):
        """Compiles every loop to tick the budget on each item and every ``~`` to check sizes first."""

        def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
            for loop in list(node.find_all(nodes.For)):  # for x in environment.sentinel_items(<items>)
                items = nodes.EnvironmentAttribute("sentinel_items", lineno=loop.iter.lineno)
                loop.iter = nodes.Call(items, [loop.iter], [], None, None, lineno=loop.iter.lineno)
            super().visit_Template(node, frame)

        def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
            if frame.eval_ctx.volatile:  # as CodeGenerator.visit_Concat chooses
                join = "(markup_join if context.eval_ctx.volatile else str_join)"
            else:
                join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
            self.write(f"{join}(environment.sentinel_parts((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write(")))")

    class BoundedEnvironment(SandboxedEnvironment):
        """Calls, operators, filters, loops and output all check the current render's budget."""

        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset({"*", "**", "%", "+"})

        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
            self.filters[_VARIABLE_FILTER] = _variable

        def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            budget = _budget()
            budget.tick()
            args = _check_call(obj, args, kwargs)
            if budget.depth >= MAX_CALL_DEPTH:
                raise TemplateLimitError(
                    f"calls nest more than {MAX_CALL_DEPTH} deep (a macro calling itself?), the limit for a "
                    "message template"
                )
            budget.depth += 1
            try:
                result = super().call(context, obj, *args, **kwargs)
            finally:
                budget.depth -= 1
            _check_value(result)
            owner = getattr(obj, "__self__", None)
            if isinstance(owner, list | dict | set):  # list.append and the like grow their list
                _check_value(owner)
            return result

        def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
            _budget().tick()
            _check_binop(operator, left, right)
            result = super().call_binop(context, operator, left, right)
            _check_value(result)
            return result

        def concat(self, parts: Iterable[str]) -> str:
            """Join the output of the template (and of each macro or block), checking time and size as it comes."""
            budget = _budget()
            size = 0
            out = []
            for part in parts:
                budget.tick()
                size += len(part)
                _check_size(size)
                out.append(part)
            return "".join(out)

        def sentinel_items(self, items: Any) -> Any:
            return _Ticking(items)

        def sentinel_parts(self, parts: tuple[Any, ...]) -> tuple[Any, ...]:
            _budget().tick()
            _check_size(sum(len(p) if isinstance(p, str) else _measure(p) for p in parts))
            return parts

    return BoundedEnvironment


class _Ticking:
    """A loop's items, checking the deadline before each one; sized when the items are."""

    def __init__(self, items: Any) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        budget = _budget()
        for item in self.items:
            budget.tick()
            yield item

    def __len__(self) -> int:
        return len(self.items)  # TypeError when unsized: the loop then lists the items to count them


@functools.cache
def _variables_extension_class() -> type[Any]:
    """A lexer step turning ``${NAME}`` (in text and in string literals) into a lookup at render time."""
    from jinja2.ext import Extension
    from jinja2.lexer import Token, TokenStream

    def lookup(line: int, match: re.Match[str]) -> Iterator[Token]:
        yield Token(line, "string", match.group("name"))
        yield Token(line, "pipe", "|")
        yield Token(line, "name", _VARIABLE_FILTER)
        if match.group("default") is not None:
            yield Token(line, "lparen", "(")
            yield Token(line, "string", match.group("default"))
            yield Token(line, "rparen", ")")

    def in_text(token: Token) -> Iterator[Token]:
        line, value, start = token.lineno, token.value, 0
        for match in _REFERENCE.finditer(value):
            if match.start() > start:
                yield Token(line, "data", value[start : match.start()])
            line += value.count("\n", start, match.start())
            yield Token(line, "variable_begin", "{{")
            yield from lookup(line, match)
            yield Token(line, "variable_end", "}}")
            start = match.end()
        if start < len(value):
            yield Token(line, "data", value[start:])

    def in_string(token: Token) -> Iterator[Token]:  # "a ${X} b" -> ("a " ~ "X"|$variable ~ " b")
        line, value, start = token.lineno, token.value, 0
        pieces: list[list[Token]] = []
        for match in _REFERENCE.finditer(value):
            if match.start() > start:
                pieces.append([Token(line, "string", value[start : match.start()])])
            pieces.append(list(lookup(line, match)))
            start = match.end()
        if start < len(value):
            pieces.append([Token(line, "string", value[start:])])
        yield Token(line, "lparen", "(")
        for i, piece in enumerate(pieces):
            if i:
                yield Token(line, "tilde", "~")
            yield from piece
        yield Token(line, "rparen", ")")

    class Variables(Extension):
        """``${NAME}`` and ``${NAME:-default}`` become a lookup of the value when rendering: data, not code."""

        def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
            for token in stream:
                if token.type == "data" and "${" in token.value:
                    yield from in_text(token)
                elif token.type == "string" and "${" in token.value and _REFERENCE.search(token.value):
                    yield from in_string(token)
                else:
                    yield token

    return Variables
