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
    "InstanceResult",
    "InstanceRow",
    "instance_name",
    "label_text",
    "parse_instances",
    "shown_label",
]

MAX_LABEL_CHARS = 200
"""Characters of a label value kept; a longer value is cut and ends in ``…``."""


@dataclass(frozen=True)
class InstanceRow:
    """One row of an instance alert: its name, labels and its result under the contract."""

    name: str
    labels: dict[str, str]
    result: AlertResult


@dataclass(frozen=True)
class InstanceResult:
    """All the instances one evaluation returned, in the query's order."""

    rows: tuple[InstanceRow, ...]
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
    ``status_required``, a baseline alert's, a row without a ``status`` column reads as OK).

    Raises :class:`ResultContractError` when a ``by`` column is missing (listing the columns returned), two rows
    have the same labels (naming them), or a row breaks the contract (naming its instance).
    """
    names = [str(c) for c in columns]
    lowered = [n.lower() for n in names]
    missing = [c for c in spec.by if c.lower() not in lowered]
    if missing:
        raise ResultContractError(
            alert, f"instances.by names {', '.join(repr(c) for c in missing)}, which the query does not return", names
        )
    label_at = {c: lowered.index(c.lower()) for c in spec.by}
    others = [i for i, n in enumerate(lowered) if i not in label_at.values()]
    judge = row_judge(alert, [names[i] for i in others], status_required=status_required)
    seen: dict[str, int] = {}
    parsed: list[InstanceRow] = []
    for number, row in enumerate(rows[: spec.max], start=1):
        whole = {c: label_text(row[i]) for c, i in label_at.items()}
        name = instance_name(alert, whole)
        labels = {c: shown_label(text) for c, text in whole.items()}
        if name in seen:
            raise ResultContractError(
                alert,
                f"rows {seen[name]} and {number} have the same labels {name[len(alert) :]}; each instance needs its "
                f"own row (add a label column to instances.by, or aggregate the rows)",
                names,
            )
        seen[name] = number
        try:
            result = judge([row[i] for i in others])
        except ResultContractError as exc:
            raise ResultContractError(alert, f"instance {name[len(alert) :]}: {exc.problem}", names) from None
        parsed.append(InstanceRow(name, labels, result))
    return InstanceResult(tuple(parsed), cut=len(rows) > spec.max, columns=tuple(names))
