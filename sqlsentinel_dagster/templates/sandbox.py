"""The one bounded Jinja2 environment every template is checked and rendered with.

A sandboxed environment whose calls, operators, filters, loops and output tick the current render's budget
and check sizes (:mod:`.limits`), compiled by a code generator that makes every loop and every ``~`` go
through those checks. Jinja2 is imported on first use, so that loading definitions does not import it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import TemplateLimitError
from .limits import (
    FILTER_COUNTS,
    FILTER_SIZES,
    MAX_CALL_DEPTH,
    TEXT_FILTERS,
    check_binop,
    check_call,
    check_size,
    check_value,
    current_budget,
    measure,
    measured,
)
from .variables import VARIABLE_FILTER, ConfigText, variable_value, variables_extension_class

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = ["environment"]


@functools.cache
def environment(strict: bool) -> SandboxedEnvironment:
    """The sandbox: strict for checking templates; lenient when sending, so that a context column missing from
    one evaluation renders empty rather than losing the notification. (Jinja2 is imported on first use.)"""
    from jinja2 import ChainableUndefined, StrictUndefined

    undefined = StrictUndefined if strict else ChainableUndefined
    return _bounded_environment_class()(
        undefined=undefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_finalize,
        extensions=[variables_extension_class()],
    )


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` before it becomes text: a list or mapping may stand for far more text than it holds;
    data is escaped the channel's way when the render has an ``escape`` (not ``${VAR}`` values, which are
    config, nor output already escaped by a filter such as ``tojson``, which has ``__html__``)."""
    if not isinstance(value, str):
        check_size(measure(value))
    escape = current_budget().escape
    if escape is None or isinstance(value, ConfigText) or hasattr(value, "__html__"):
        return value
    return escape(value if isinstance(value, str) else str(value))


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a filter) with the deadline, its size checked before (by name) and after."""
    passed = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # context, eval context or env
    size, count = FILTER_SIZES.get(name), FILTER_COUNTS.get(name)
    text = name in TEXT_FILTERS

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        current_budget().tick()
        if text and len(args) > passed:
            args = (*args[:passed], measured(args[passed]), *args[passed + 1 :])
        if size is not None and len(args) > passed:
            check_size(size(args[passed:], kwargs))
        if count is not None and len(args) > passed:
            check_size(count(args[passed:], kwargs), "a list")
        result = function(*args, **kwargs)
        check_value(result)
        return result

    return bounded


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
            self.filters[VARIABLE_FILTER] = variable_value

        def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            budget = current_budget()
            budget.tick()
            args = check_call(obj, args, kwargs)
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
            check_value(result)
            owner = getattr(obj, "__self__", None)
            if isinstance(owner, list | dict | set):  # list.append and the like grow their list
                check_value(owner)
            return result

        def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
            current_budget().tick()
            check_binop(operator, left, right)
            result = super().call_binop(context, operator, left, right)
            check_value(result)
            return result

        def concat(self, parts: Iterable[str]) -> str:
            """Join the output of the template (and of each macro or block), checking time and size as it comes."""
            budget = current_budget()
            size = 0
            out = []
            for part in parts:
                budget.tick()
                size += len(part)
                check_size(size)
                out.append(part)
            return "".join(out)

        def sentinel_items(self, items: Any) -> Any:
            return _Ticking(items)

        def sentinel_parts(self, parts: tuple[Any, ...]) -> tuple[Any, ...]:
            current_budget().tick()
            check_size(sum(len(p) if isinstance(p, str) else measure(p) for p in parts))
            return parts

    return BoundedEnvironment


class _Ticking:
    """A loop's items, checking the deadline before each one; sized when the items are."""

    def __init__(self, items: Any) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        budget = current_budget()
        for item in self.items:
            budget.tick()
            yield item

    def __len__(self) -> int:
        return len(self.items)  # TypeError when unsized: the loop then lists the items to count them
