"""Message templates: Jinja2 in a sandbox, with a fixed, documented set of variables.

A template is checked when the alerts file loads (syntax, unknown variables, and a trial render with sample
values), so a typo is a validation error, not a broken notification at 3am. The old SQL Sentinel style
``{alert_name}`` is accepted and read as ``{{ alert_name }}``.

``${NAME}`` and ``${NAME:-default}`` in a template are replaced by the variable's value when the message is
rendered, as data: the value is output as it is and never read as template code (:mod:`.variables`).

A channel whose text has markup (Slack mrkdwn, a JSON webhook body) renders with its ``escape``: every
``{{ value }}`` from the message is escaped its way, while the template's own text and ``${NAME}`` values,
written by the team, stay live (see ``notifiers/escaping.py``).

Rendering is bounded, at load (the trial render) and at send alike, by one environment (:mod:`.sandbox`): at
most :data:`MAX_RENDER_SECONDS` of time, :data:`MAX_RENDER_CHARS` characters of output (and of any text, list
or number the template makes), and :data:`MAX_CALL_DEPTH` nested macro calls. Time is checked at every loop
iteration, call, filter, operator and piece of output; sizes are checked before an operation that multiplies
them (``*``, ``**``, ``%``, ``~``, widths such as ``center(n)``, ``join``, ``replace``, ``indent``) by
:mod:`.limits`. Jinja2 is imported on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..envsubst import REFERENCE  # the one ${NAME} / ${NAME:-default} syntax
from ..errors import SecretResolutionError, TemplateLimitError, TemplateRenderError
from ..redact import redact_text
from .limits import MAX_CALL_DEPTH, MAX_RENDER_CHARS, MAX_RENDER_SECONDS, check_source, within_limits
from .sandbox import environment

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

VARIABLES: dict[str, str] = {
    "alert_name": "the alert's name",
    "instance": 'an instance alert\'s instance, e.g. error_rate{endpoint="/orders"} (none for other alerts)',
    "labels": "an instance alert's label columns and their values, a mapping (empty for other alerts)",
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
    "row_count": "a failed-rows alert's row count (none for other alerts)",
    "columns": "a failed-rows alert's column names, a list",
    "rows": "a failed-rows alert's rows: a list of mappings keyed by column name",
    "expected": "a baseline alert's value and expectation in words (median and band over its history)",
    "baseline": "a baseline alert's centre (median, mean or compared value); none for other alerts",
    "threshold_low": "a baseline alert's lower bound (none when it has none)",
    "threshold_high": "a baseline alert's upper bound (none when it has none)",
}

SAMPLE: dict[str, Any] = {
    "alert_name": "orders_late",
    "instance": 'orders_late{region="eu"}',
    "labels": {"region": "eu"},
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
    "row_count": 2,
    "columns": ["id", "amount"],
    "rows": [{"id": 1, "amount": 9.5}, {"id": 2, "amount": 12}],
    "expected": "84, expected 140\N{EN DASH}210 (median 172 over the last 14 days)",
    "baseline": 172.0,
    "threshold_low": 140.0,
    "threshold_high": 210.0,
}


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a usable template (syntax, unknown variable, failed or too costly trial render), or
    None. ``${VAR}`` references are accepted and need not be set."""
    from jinja2 import TemplateError, meta

    source = _modernize(text)
    strict = environment(True)
    try:
        with within_limits(None):
            check_source(source)
            unknown = sorted(meta.find_undeclared_variables(strict.parse(source)) - VARIABLES.keys())
    except TemplateLimitError as exc:
        return f"template error: {exc}"
    except TemplateError as exc:
        return f"template error: {str(exc).splitlines()[0]}"
    if unknown:
        return f"unknown template variable(s) {', '.join(unknown)}; available: {', '.join(VARIABLES)}"
    try:
        with within_limits(None):
            strict.from_string(source).render({**SAMPLE, "context": _AnyColumns(SAMPLE["context"])})
    except Exception as exc:  # whatever the template does wrong is its problem, never a crash of the load
        return f"template fails to render with sample values: {exc}"
    return None


def render(
    text: str,
    message: Mapping[str, Any],
    variables: Mapping[str, str] | None = None,
    *,
    escape: Callable[[str], str] | None = None,
) -> str:
    """Render ``text`` with the notification's values (missing ones are empty); ``${NAME}`` takes its value from
    ``variables`` (see :func:`template_variables`). ``escape``: how the channel escapes data, applied to every
    ``{{ value }}`` (the template's own text and ``${NAME}`` values are config, left as they are). Raises
    :class:`TemplateRenderError` when it fails."""
    values = {name: message.get(name) for name in VARIABLES}
    values["run_url"] = values["run_url"] or ""
    values["silence"] = values["silence"] or ""
    variables = variables or {}
    try:
        with within_limits(variables, escape):
            source = _modernize(text)
            check_source(source)
            return environment(False).from_string(source).render(values)
    except TemplateRenderError:
        raise
    except Exception as exc:  # a template failing on this notification's values
        cause = redact_text(str(exc), variables.values())
        raise TemplateRenderError(f"{type(exc).__name__}: {cause}") from None


def template_variables(text: str | None, where: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the variables ``text`` refers to as ``${NAME}``, for :func:`render`. An unset variable
    without default raises :class:`SecretResolutionError` naming ``where`` (never a value)."""
    values: dict[str, str] = {}
    for match in REFERENCE.finditer(text or ""):
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
