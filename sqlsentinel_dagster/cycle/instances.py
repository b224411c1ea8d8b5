"""An instance alert's result (``instances:``): each row is one instance, named by its label columns, judged by
the result contract on its own. No Dagster here.

Names follow Prometheus: ``error_rate{endpoint="/orders",region="eu"}``, labels sorted, values quoted with
``\\``, ``"`` and newlines escaped (any other character that does not print, such as a control character or a
bidi override, as ``\\xNN`` or ``\\uNNNN``). A name longer than
:data:`~..naming.MAX_STATE_NAME` (what the state tables keep) is cut and ends in ``~`` and 12 hex digits of the
full name's sha256, as watched checks' names are.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..config.instances import InstancesSpec
from ..errors import ResultContractError
from ..naming import state_name
from .results import AlertResult, row_judge

__all__ = [
    "MAX_LABEL_CHARS",
    "InstanceParser",
    "InstanceResult",
    "ParsedInstance",
    "instance_name",
    "label_text",
    "parse_instances",
    "shown_label",
]

MAX_LABEL_CHARS = 200
"""Characters of a label value kept; a longer value is cut and ends in ``…``."""


@dataclass(frozen=True)
class ParsedInstance:
    """One row of an instance alert: its name, labels and its result under the contract."""

    name: str
    labels: dict[str, str]
    result: AlertResult


@dataclass(frozen=True)
class InstanceResult:
    """All the instances one evaluation returned, in the query's order."""

    rows: tuple[ParsedInstance, ...]
    cut: bool = False
    """The query returned more than ``max`` rows: only the first ``max`` were read."""
    columns: tuple[str, ...] = ()

    def summary(self) -> AlertResult:
        """The alert's result: ALERT when any row is, ``actual_value`` the number that are, these instances."""
        firing = sum(1 for row in self.rows if row.result.firing)
        return AlertResult("ALERT" if firing else "OK", firing, None, more_rows=self.cut, instances=self)


def label_text(value: Any) -> str:
    """A label value as text, whole: NULL is empty (as an absent label is in Prometheus), numbers and dates as
    written (see :func:`shown_label` for the text kept and shown)."""
    if value is None:
        text = ""
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        text = value.isoformat()
    elif isinstance(value, float | Decimal) and _whole(float(value)):
        text = str(int(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).hex()
    else:
        text = str(value)
    return text


def shown_label(text: str) -> str:
    """A label value as kept and shown: at most :data:`MAX_LABEL_CHARS` characters (the instance's name is made
    of the whole value, so two values that differ only past the cut are two instances)."""
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def _whole(number: float) -> bool:
    """Whether ``number`` is a whole number written exactly as an integer (``3.0`` labels as ``3``)."""
    return math.isfinite(number) and number.is_integer() and abs(number) < 2**53


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    if not escaped.isprintable():  # control, format (bidi overrides), line and paragraph separators, odd spaces
        escaped = "".join(c if c.isprintable() else _escaped(c) for c in escaped)
    return '"' + escaped + '"'


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def instance_name(alert: str, labels: Mapping[str, str]) -> str:
    """``alert{a="x",b="y"}``, labels sorted, at most :data:`~..naming.MAX_STATE_NAME` characters (see the
    module's docstring)."""
    return state_name(alert + "{" + ",".join(f"{key}={_quoted(labels[key])}" for key in sorted(labels)) + "}")


def parse_instances(
    alert: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    spec: InstancesSpec,
    *,
    status_required: bool = True,
) -> InstanceResult:
    """Each of ``rows`` (at most ``spec.max + 1``: one more tells the result was cut) as an instance (without
    ``status_required``, a baseline alert's, a row without a ``status`` column reads as OK); see
    :class:`InstanceParser`, which evaluation feeds the rows as they stream in."""
    parser = InstanceParser(alert, columns, spec, status_required=status_required)
    for row in rows[: parser.wanted]:
        parser.add(row)
    return parser.result()


class InstanceParser:
    """An instance alert's result built one row at a time, as the rows stream in: each row is judged, and its
    values made safe (:func:`.results.safe_value`), when it arrives, so memory follows what is kept, not what the
    query returns. It reads ``spec.max + 1`` rows at most (one more tells that the result is cut).

    Raises :class:`ResultContractError` when a ``by`` column is missing (listing the columns returned), two rows
    have the same labels (naming them), or a row breaks the contract (naming its instance).
    """

    def __init__(
        self, alert: str, columns: Sequence[str], spec: InstancesSpec, *, status_required: bool = True
    ) -> None:
        self.alert, self.spec = alert, spec
        self.names = [str(c) for c in columns]
        lowered = [n.lower() for n in self.names]
        missing = [c for c in spec.by if c.lower() not in lowered]
        if missing:
            listed = ", ".join(repr(c) for c in missing)
            raise ResultContractError(
                alert, f"instances.by names {listed}, which the query does not return", self.names
            )
        self._label_at = {c: lowered.index(c.lower()) for c in spec.by}
        self._others = [i for i in range(len(lowered)) if i not in self._label_at.values()]
        self._judge = row_judge(alert, [self.names[i] for i in self._others], status_required=status_required)
        self._seen: dict[str, int] = {}
        self._parsed: list[ParsedInstance] = []
        self.count = 0
        """Rows seen so far, at most ``spec.max + 1``."""

    @property
    def wanted(self) -> int:
        """How many more rows are worth reading: 0 once there are more than ``spec.max``."""
        return self.spec.max + 1 - self.count

    def add(self, row: Sequence[Any]) -> None:
        """Judge ``row`` as the next instance (the row past ``spec.max`` is only counted: the result is cut)."""
        self.count += 1
        if self.count > self.spec.max:
            return
        alert = self.alert
        whole = {c: label_text(row[i]) for c, i in self._label_at.items()}
        name = instance_name(alert, whole)
        if name in self._seen:
            raise ResultContractError(
                alert,
                f"rows {self._seen[name]} and {self.count} have the same labels {name[len(alert) :]}; each instance "
                "needs its own row (add a label column to instances.by, or aggregate the rows)",
                self.names,
            )
        self._seen[name] = self.count
        try:
            result = self._judge([row[i] for i in self._others])
        except ResultContractError as exc:
            raise ResultContractError(alert, f"instance {name[len(alert) :]}: {exc.problem}", self.names) from None
        self._parsed.append(ParsedInstance(name, {c: shown_label(text) for c, text in whole.items()}, result))

    def result(self) -> InstanceResult:
        """The instances read, in the query's order, and whether the result was cut."""
        return InstanceResult(tuple(self._parsed), cut=self.count > self.spec.max, columns=tuple(self.names))
