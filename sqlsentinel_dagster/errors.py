"""Exceptions raised by sqlsentinel-dagster.

Every message is built before raising and names where the problem is: the file and line for configuration,
the alert and the cause at run time. No message ever contains a secret: URLs are redacted first.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AlertQueryError",
    "ConfigError",
    "ConfigProblem",
    "ResultContractError",
    "SecretResolutionError",
    "SentinelError",
    "StateDatabaseError",
    "TemplateLimitError",
    "TemplateRenderError",
]


class SentinelError(Exception):
    """Base class of every error this package raises on purpose."""


@dataclass(frozen=True, order=True)
class ConfigProblem:
    """One problem found in an alerts file: where it is and what is wrong."""

    line: int
    """1-based line in the file; 0 when the problem concerns the file as a whole."""
    location: str
    """Dotted path to the value, e.g. ``alerts[2] (orders_late).notify[0].channel``."""
    message: str
    """What is wrong and what is allowed."""
    file: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.location}: {self.message}" if self.location else f"{where}: {self.message}"


class ConfigError(SentinelError):
    """Raised when an alerts file cannot be used; carries every problem found, not just the first."""

    def __init__(self, path: str, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = sorted(problems)
        count = len(self.problems)
        header = f"{path}: {count} problem{'s' if count != 1 else ''} found"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))


class AlertQueryError(SentinelError):
    """Raised when an alert's query cannot run: bad SQL, missing table, timeout or unreachable warehouse."""

    def __init__(self, alert: str, database: str, cause: str) -> None:
        self.alert = alert
        self.database = database
        self.cause = cause
        super().__init__(f"alert '{alert}': query on database '{database}' failed: {cause}")


class ResultContractError(SentinelError):
    """Raised when a query ran but its result breaks the contract (no rows, no or bad ``status`` column)."""

    def __init__(self, alert: str, problem: str, columns: list[str]) -> None:
        self.alert = alert
        self.problem = problem
        self.columns = columns
        shown = ", ".join(columns) if columns else "(none)"
        super().__init__(
            f"alert '{alert}': {problem}; the query returned columns: {shown}. "
            "Expected a row with a 'status' column of 'ALERT' or 'OK' "
            "(optional: 'actual_value', 'threshold', any other columns become context)."
        )


class SecretResolutionError(SentinelError):
    """Raised at run time when a ``${VAR}`` reference in the alerts file names an unset variable, or (``empty``)
    a variable that is set but empty where a value is required (a URL, a routing key)."""

    def __init__(self, where: str, variable: str, *, empty: bool = False) -> None:
        self.where = where
        self.variable = variable
        default = f"write ${{{variable}:-default}} to give a default"
        state = "is set but empty" if empty else f"is not set ({default})"
        super().__init__(f"{where}: environment variable '{variable}' {state}")


class TemplateRenderError(SentinelError):
    """Raised by :func:`~sqlsentinel_dagster.templates.render` when a template fails on a notification's values;
    the message names the cause, with the values of ``${VAR}``s redacted. Each channel turns it into a permanent
    delivery failure."""


class TemplateLimitError(TemplateRenderError):
    """Raised when rendering a template goes past a limit (time, size, call depth); the message names the limit.
    At load it is reported as a problem of the template."""


class StateDatabaseError(SentinelError):
    """Raised when the state database cannot be used at all, e.g. its URL (from ``${VAR}``) does not parse; the
    message never contains the URL."""
