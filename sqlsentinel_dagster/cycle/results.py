"""The result contract: what an alert query's first row must hold, and the :class:`AlertResult` made of it.
No Dagster here.

The contract: the first row has a ``status`` column whose value is ``ALERT`` or ``OK`` (any case); optional
``actual_value`` and ``threshold`` columns; every other column becomes context. Values are made safe to store and
send (:func:`safe_value`), and everything kept is bounded (:data:`MAX_CELL_CHARS`, :data:`MAX_CONTEXT_COLUMNS`,
:data:`MAX_ROWS_BYTES`). A failed-rows alert's rows are tallied one at a time as they stream in (:class:`RowsTally`),
so these bounds hold while the rows are read, not only after.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ..config.rows import RowsSpec
from ..errors import ResultContractError

if TYPE_CHECKING:
    from ..baselines.verdict import Verdict
    from .instances import InstanceResult

__all__ = [
    "MAX_CELL_CHARS",
    "MAX_CONTEXT_COLUMNS",
    "MAX_ROWS_BYTES",
    "AlertResult",
    "RowsTally",
    "parse_result",
    "parse_rows",
    "row_judge",
    "safe_value",
]

Status = Literal["ALERT", "OK"]
NoData = Literal["error", "ok", "alert", "keep"]


@dataclass(frozen=True)
class AlertResult:
    """The outcome of one evaluation that satisfied the result contract."""

    status: Status
    actual_value: Any = None
    threshold: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    more_rows: bool = False
    """The query returned more than one row; only the first was used. For a failed-rows alert: more rows than
    its ``limit`` (the count is a lower bound)."""
    duration_ms: float = 0.0
    columns: tuple[str, ...] = ()
    """A failed-rows alert's columns."""
    rows: tuple[dict[str, Any], ...] = ()
    """A failed-rows alert's rows kept for messages: the sample, or every fetched row with ``attach: csv``
    (at most :data:`MAX_ROWS_BYTES` of them)."""
    verdict: Verdict | None = None
    """A baseline alert's verdict on ``actual_value`` (see :mod:`.learned`)."""
    no_data: NoData | None = None
    """The query returned no rows, and the alert's ``no_data`` (``ok``, ``alert`` or ``keep``) made this result."""
    instances: InstanceResult | None = None
    """An instance alert's rows, each an instance (``status`` is then ALERT when any is, ``actual_value`` the
    number that are)."""

    @property
    def firing(self) -> bool:
        """Whether the alert condition holds."""
        return self.status == "ALERT"


def parse_result(
    alert: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    status_required: bool = True,
    no_data: NoData = "error",
) -> AlertResult:
    """Apply the result contract to a query's columns and rows (the first row is used). Values are made safe
    to store and send (see :func:`safe_value`); context beyond :data:`MAX_CONTEXT_COLUMNS` is summarized.
    Without ``status_required`` (a baseline alert) a missing ``status`` column reads as OK. No rows is an error,
    unless ``no_data`` says otherwise: ``ok`` and ``alert`` are that status, ``keep`` leaves the status to the
    alert's state (:attr:`AlertResult.no_data` is set, and the context says so)."""
    judge = row_judge(alert, columns, status_required=status_required)
    if not rows and no_data != "error":
        note = {"no_data": f"the query returned no rows (no_data: {no_data})"}
        return AlertResult("ALERT" if no_data == "alert" else "OK", context=note, no_data=no_data)
    if not rows:
        raise ResultContractError(alert, "the query returned no rows", [str(c) for c in columns])
    result = judge(rows[0])
    return replace(result, more_rows=True) if len(rows) > 1 else result


def row_judge(
    alert: str, columns: Sequence[str], *, status_required: bool = True
) -> Callable[[Sequence[Any]], AlertResult]:
    """The result contract for rows with ``columns``, checked once: a function judging one row (raising
    :class:`ResultContractError` for a bad ``status``), so thousands of rows (an instance alert's) cost little.
    Raises :class:`ResultContractError` when the columns themselves break the contract."""
    names = [str(c) for c in columns]
    lowered = [c.lower() for c in names]
    if "status" not in lowered and status_required:
        raise ResultContractError(alert, "the result has no 'status' column", names)
    repeated = sorted({c for c in lowered if c in _RESERVED and lowered.count(c) > 1})
    if repeated:
        raise ResultContractError(alert, f"the result has more than one '{repeated[0]}' column; name it once", names)
    at = {name: lowered.index(name) for name in _RESERVED if name in lowered}
    others = [i for i, name in enumerate(lowered) if name not in _RESERVED]
    shown = others[:MAX_CONTEXT_COLUMNS]  # two columns of the same name: both kept
    keys = list(zip(_unique([names[i] for i in shown]), shown, strict=True))
    more = len(others) - len(shown)

    def judge(row: Sequence[Any]) -> AlertResult:
        raw_status = row[at["status"]] if "status" in at else "OK"
        status = raw_status.strip().upper() if isinstance(raw_status, str) else ""
        if status not in ("ALERT", "OK"):
            shown_status = safe_value(raw_status)
            raise ResultContractError(alert, f"'status' is {shown_status!r}, expected 'ALERT' or 'OK'", names)
        context = {key: safe_value(row[i]) for key, i in keys}
        if more > 0:
            context["..."] = f"{more} more columns not shown"
        return AlertResult(
            status="ALERT" if status == "ALERT" else "OK",
            actual_value=safe_value(row[at["actual_value"]]) if "actual_value" in at else None,
            threshold=safe_value(row[at["threshold"]]) if "threshold" in at else None,
            context=context,
        )

    return judge


def parse_rows(alert: str, columns: Sequence[str], fetched: Sequence[Sequence[Any]], spec: RowsSpec) -> AlertResult:
    """A failed-rows alert's result: ALERT when there are more than ``spec.max`` rows. ``fetched`` holds at most
    ``spec.limit + 1`` rows (one more tells that there are more); any beyond are not looked at. Evaluation
    tallies rows as they stream in instead (:class:`RowsTally`); this tallies a list."""
    tally = RowsTally(columns, spec)
    for row in fetched[: tally.wanted]:
        tally.add(row)
    return tally.result()


class RowsTally:
    """A failed-rows alert's result built one row at a time, as the rows stream in.

    It counts up to ``spec.limit + 1`` rows (one more tells that there are more) and keeps, made safe at once
    (:func:`safe_value`: 1,000 characters a cell), only the rows the messages show: the sample, or every row
    with ``attach: csv``, within :data:`MAX_ROWS_BYTES`. It holds no raw row, so memory follows what is kept,
    not what the query returns.
    """

    def __init__(self, columns: Sequence[str], spec: RowsSpec) -> None:
        self.spec = spec
        self.columns = tuple(_unique([str(c) for c in columns]))
        self.count = 0
        """Rows seen so far, at most ``spec.limit + 1``."""
        self._keep = spec.limit if spec.attach == "csv" else min(spec.limit, spec.sample)
        self._kept: list[dict[str, Any]] = []
        self._size = 0
        self._full = False

    @property
    def wanted(self) -> int:
        """How many more rows are worth reading: 0 once there are more than ``spec.limit``."""
        return self.spec.limit + 1 - self.count

    def add(self, row: Sequence[Any]) -> None:
        """Count ``row``, and keep it made safe if the messages show it and :data:`MAX_ROWS_BYTES` allows.

        Raises ValueError when no more rows are wanted (the caller read past ``spec.limit + 1``).
        """
        if self.wanted <= 0:
            raise ValueError(f"a failed-rows alert reads at most limit + 1 = {self.spec.limit + 1} rows")
        self.count += 1
        if self._full or len(self._kept) >= self._keep:
            return
        values = {name: safe_value(value) for name, value in zip(self.columns, row, strict=False)}
        self._size += len(json.dumps(values, default=str))
        if self._size > MAX_ROWS_BYTES:
            self._full = True  # the rows kept stay a prefix of the result: none after the first that did not fit
        else:
            self._kept.append(values)

    def result(self) -> AlertResult:
        """ALERT when more than ``spec.max`` rows were counted; the count stops at ``spec.limit``."""
        count = min(self.count, self.spec.limit)
        return AlertResult(
            status="ALERT" if count > self.spec.max else "OK",
            actual_value=count,
            threshold=self.spec.max,
            more_rows=self.count > self.spec.limit,
            columns=self.columns,
            rows=tuple(self._kept),
        )


def _unique(names: list[str]) -> list[str]:
    """Column names made unique: a second ``id`` becomes ``id (2)``."""
    seen: list[str] = []
    for name in names:
        key, copy = name[:MAX_CELL_CHARS], 1
        while key in seen:
            copy += 1
            key = f"{name[:MAX_CELL_CHARS]} ({copy})"
        seen.append(key)
    return seen


MAX_ROWS_BYTES = 2_000_000
"""JSON bytes of a failed-rows alert's rows kept for its messages (sample or CSV attachment)."""
_RESERVED = frozenset({"status", "actual_value", "threshold"})
MAX_CELL_CHARS = 1_000
"""Characters of one value kept from a result (context, actual_value, threshold); the rest is cut, saying so."""
MAX_CONTEXT_COLUMNS = 50
"""Context columns kept from a result; the others are counted, not stored or sent."""


def safe_value(value: Any) -> Any:
    """A database value as something every channel and the state store can take: numbers stay numbers (NaN and
    infinities become the text ``NaN``, ``Infinity``, ``-Infinity``, valid in any JSON), binary becomes a short
    hex summary, and any text longer than :data:`MAX_CELL_CHARS` is cut."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float | Decimal):
        number = math.nan if isinstance(value, Decimal) and value.is_snan() else float(value)
        if math.isfinite(number):
            return value
        return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"<{len(data):,} bytes: 0x{data[:32].hex()}{'...' if len(data) > 32 else ''}>"
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return value
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple):  # JSON and array columns: kept as they are if small and valid
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = text = json.dumps(value, default=str)
    else:
        value = text = str(value)
    if len(text) > MAX_CELL_CHARS:
        return f"{text[:MAX_CELL_CHARS]}... ({len(text):,} characters, cut)"
    return value
