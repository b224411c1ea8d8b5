"""``${VAR}`` and ``${VAR:-default}`` substitution from the environment.

Structural values (schedules, names, timeouts) are substituted when the file is loaded. Values that may hold
secrets (database URLs, notification settings) keep their ``${VAR}`` text in the definitions and are
substituted by :func:`resolve` inside the run, so the Dagster UI never sees them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

from .errors import SecretResolutionError

__all__ = ["REFERENCE", "find_syntax_error", "references", "resolve", "resolve_url"]

REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
"""The one ``${NAME}`` / ``${NAME:-default}`` syntax, shared with message templates: groups ``name`` and
``default`` (None without ``:-``)."""
_ANY_DOLLAR_BRACE = re.compile(r"\$\{[^}]*\}?")


def find_syntax_error(text: str) -> str | None:
    """Return a description of the first malformed ``${...}`` in ``text``, or ``None`` if all are valid."""
    for match in _ANY_DOLLAR_BRACE.finditer(text):
        if not REFERENCE.fullmatch(match.group(0)):
            return (
                f"malformed variable reference '{match.group(0)}'; "
                "write ${NAME} or ${NAME:-default} (NAME: letters, digits, underscore)"
            )
    return None


def references(text: str) -> list[str]:
    """The names of the variables ``text`` refers to."""
    return [match.group("name") for match in REFERENCE.finditer(text)]


def resolve(text: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Substitute every ``${VAR}`` in ``text``; an unset variable without default raises.

    ``where`` names the value for the error message (never the value itself).
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise SecretResolutionError(where, name)

    return REFERENCE.sub(substitute, text)


def resolve_url(text: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """:func:`resolve` for a database URL: a variable in the user or password part is percent-escaped, so a
    password holding ``@``, ``:``, ``/``, ``#`` or ``%`` stays a password (an already escaped value is kept
    as it is). A variable holding a whole URL is substituted as it is: it must be escaped already.
    """
    scheme, separator, rest = text.partition("://")
    masked = REFERENCE.sub(lambda m: "x" * len(m.group(0)), rest)  # '@' inside a ${...:-default} is no boundary
    at = masked.find("@")
    if not separator or at < 0 or "/" in masked[:at]:
        return resolve(text, where, environ)
    userinfo = REFERENCE.sub(lambda m: quote(unquote(resolve(m.group(0), where, environ)), safe=""), rest[:at])
    return f"{resolve(scheme, where, environ)}://{userinfo}{resolve(rest[at:], where, environ)}"
