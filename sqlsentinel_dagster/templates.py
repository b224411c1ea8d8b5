"""Message templates: Jinja2 in a sandbox, with a fixed, documented set of variables.

A template is checked when the alerts file loads (syntax, unknown variables, and a trial render with sample
values), so a typo is a validation error, not a broken notification at 3am. The old SQL Sentinel style
``{alert_name}`` is accepted and read as ``{{ alert_name }}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = ["SAMPLE", "VARIABLES", "render", "template_problem"]

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


@functools.cache
def _environment(strict: bool) -> SandboxedEnvironment:
    """The sandbox: strict for checking templates; lenient when sending, so that a context column missing from
    one evaluation renders empty rather than losing the notification. (Jinja2 is imported on first use.)"""
    from jinja2 import ChainableUndefined, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    undefined = StrictUndefined if strict else ChainableUndefined
    return SandboxedEnvironment(undefined=undefined, autoescape=False, keep_trailing_newline=True)


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


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a usable template (syntax, unknown variable, failed trial render), or None."""
    from jinja2 import TemplateError, meta

    source = _modernize(text)
    strict = _environment(True)
    try:
        unknown = sorted(meta.find_undeclared_variables(strict.parse(source)) - VARIABLES.keys())
    except TemplateError as exc:
        return f"template error: {str(exc).splitlines()[0]}"
    if unknown:
        return f"unknown template variable(s) {', '.join(unknown)}; available: {', '.join(VARIABLES)}"
    try:
        strict.from_string(source).render({**SAMPLE, "context": _AnyColumns(SAMPLE["context"])})
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        return f"template fails to render with sample values: {exc}"
    return None


def render(text: str, message: Mapping[str, Any]) -> str:
    """Render ``text`` with the notification's values (missing ones are empty)."""
    values = {name: message.get(name) for name in VARIABLES}
    values["run_url"] = values["run_url"] or ""
    values["silence"] = values["silence"] or ""
    return _environment(False).from_string(_modernize(text)).render(values)
