"""``${NAME}`` and ``${NAME:-default}`` in a template: a lexer step and the filter that looks the value up.

The lexer step turns each reference into ``"NAME"|$variable`` (a filter name no template can write), so the
value is output as data when the message is rendered and never read as template code. Jinja2 is imported on
first use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from ..envsubst import REFERENCE  # the one ${NAME} / ${NAME:-default} syntax
from ..errors import SecretResolutionError
from .limits import current_budget

__all__ = ["VARIABLE_FILTER", "ConfigText", "variable_value", "variables_extension_class"]

VARIABLE_FILTER = "$variable"
"""The name of the filter :func:`variable_value` is registered under: no template can write it, only
``${NAME}`` reaches it."""


class ConfigText(str):
    """A ``${NAME}`` value: text an operator set, so a channel's escaping of data leaves it alone when it is output
    as it is (any operation on it gives plain text, escaped like data)."""

    __slots__ = ()


def variable_value(name: str, default: str | None = None) -> str:
    """The ``${NAME}`` filter: the variable's value as data (never template code), as :class:`ConfigText`; a
    placeholder in the trial render at load."""
    variables = current_budget().variables
    if variables is None:
        return ConfigText(default if default is not None else f"<{name}>")
    if name in variables:
        return ConfigText(variables[name])
    if default is not None:
        return ConfigText(default)
    raise SecretResolutionError("a message template", name)


@functools.cache
def variables_extension_class() -> type[Any]:
    """A lexer step turning ``${NAME}`` (in text and in string literals) into a lookup at render time."""
    from jinja2.ext import Extension
    from jinja2.lexer import Token, TokenStream

    def lookup(line: int, match: re.Match[str]) -> Iterator[Token]:
        yield Token(line, "string", match.group("name"))
        yield Token(line, "pipe", "|")
        yield Token(line, "name", VARIABLE_FILTER)
        if match.group("default") is not None:
            yield Token(line, "lparen", "(")
            yield Token(line, "string", match.group("default"))
            yield Token(line, "rparen", ")")

    def in_text(token: Token) -> Iterator[Token]:
        line, value, start = token.lineno, token.value, 0
        for match in REFERENCE.finditer(value):
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
        for match in REFERENCE.finditer(value):
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
                elif token.type == "string" and "${" in token.value and REFERENCE.search(token.value):
                    yield from in_string(token)
                else:
                    yield token

    return Variables
