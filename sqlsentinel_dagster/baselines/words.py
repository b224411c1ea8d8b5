"""A verdict in words: ``84 orders, expected 140-210 (median 172 over the last 14 days)`` (an en dash in the
range), and the pieces :mod:`.judging` writes its reasons with."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..config.baseline import BaselineSpec
from .verdict import Band, Verdict

__all__ = [
    "center_words",
    "decimals_of",
    "delta_words",
    "describe",
    "expected_range",
    "expected_words",
    "number_words",
    "season_words",
]


_DASH = "\N{EN DASH}"

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_WORDS = (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0))


def describe(verdict: Verdict, unit: str = "") -> str:
    """The verdict for people: ``84 orders, expected 140-210 (median 172 over the last 14 days)``, with an en dash.

    ``unit`` (e.g. ``orders``) follows the value; without it the sentence reads ``84, expected ...``."""
    band = verdict.band
    shown_unit = f" {unit}" if unit else ""
    if band is None:
        return f"{number_words(verdict.value, decimals_of(verdict.value))}{shown_unit}, {verdict.reason}"
    value, expected = expected_words(verdict.value, band, words=True)
    basis = center_words(band)
    if band.method != "change":
        basis += f" {band.season}" if band.season else ""
        basis += f" over the last {_span_words(band.window_seconds, one='')}"
    return f"{value}{shown_unit}, expected {expected} ({basis})"


def expected_range(verdict: Verdict) -> str | None:
    """The band alone, as :func:`describe` writes it (``140-210`` with an en dash, ``at most 210``), for the
    alert's threshold; None while there is no band."""
    return expected_words(verdict.value, verdict.band, words=True)[1] if verdict.band is not None else None


def season_words(at: dt.datetime, spec: BaselineSpec, zone: ZoneInfo) -> str:
    """Which values ``at`` is compared with, in words (also the key): ``on Mondays between 09:00 and 10:00``."""
    local = at.astimezone(zone)
    hours = f"between {local.hour:02d}:00 and {(local.hour + 1) % 24:02d}:00"
    day = f"on {_DAYS[local.weekday()]}s"
    return {"hour_of_day": hours, "day_of_week": day}.get(spec.seasonality, f"{day} {hours}")


def center_words(band: Band) -> str:
    center = number_words(band.center, decimals_of(band.center))
    if band.method != "change":
        return f"{'mean' if band.method == 'zscore' else 'median'} {center}"
    if band.vs_seconds is None:
        return f"previous value {center}"
    return f"{center} {_span_words(band.vs_seconds, one='a ')} earlier"


def _span_words(seconds: float, one: str) -> str:
    """``'14 days'``; for exactly one unit ``one`` + ``'day'`` (``'day'``, ``'a day'``)."""
    name, size = next(((n, s) for n, s in _WORDS if seconds >= s and seconds % s == 0), ("second", 1.0))
    count = seconds / size
    return f"{one}{name}" if count == 1 else f"{number_words(count, decimals_of(count))} {name}s"


def expected_words(number: float, band: Band, words: bool) -> tuple[str, str]:
    """The value and the band as text, with as many decimals as it takes for the text to tell the same story
    as the numbers (a value just above ``high`` never reads equal to it)."""
    bounds = [b for b in (band.low, band.high) if b is not None]
    start = max(decimals_of(b) for b in bounds)
    texts, value = [], ""
    for decimals in range(start, max(start, 9) + 1):
        texts = [number_words(b, decimals) for b in bounds]
        value = number_words(number, max(decimals, decimals_of(number)))
        if all(_sign(number - b) == _sign(_parse(value) - _parse(t)) for b, t in zip(bounds, texts, strict=True)):
            break
    if band.low is not None and band.high is not None:
        low, high = texts
        if low == high:
            return value, low
        return value, f"{low} to {high}" if low.startswith("-") or high.startswith("-") else f"{low}{_DASH}{high}"
    (only,) = texts
    if band.low is not None:
        return value, f"at least {only}" if words else f"≥ {only}"
    return value, f"at most {only}" if words else f"≤ {only}"


def delta_words(number: float, center: float) -> str:
    sign = "+" if number >= center else "-"
    size = abs(number - center)
    if center != 0:
        if math.isfinite(size):
            percent = size / abs(center) * 100
        else:  # past the largest float (1e308 - -1e308): from the exact difference (the centre is huge too)
            percent = float(abs(Decimal(number) - Decimal(center)) / abs(Decimal(center)) * 100)
        if math.isfinite(percent):
            return f"{sign}{number_words(percent, decimals_of(percent))}%"
    # no percent of 0 (or of a value so small that the percent overflows)
    return f"{sign}{number_words(size, decimals_of(size))}"


def decimals_of(x: float) -> int:
    """Decimals for about 3 significant digits, never rounding the integer part: 172, 84.6, 3.14, 0.0123."""
    size = abs(x)
    if size == 0 or not math.isfinite(size):
        return 0
    if size >= 1:
        return max(0, 3 - len(str(int(size))))
    return min(9, 2 - math.floor(math.log10(size)))


def number_words(x: float, decimals: int) -> str:
    """``x`` with thousands separators and at most ``decimals`` decimals, trailing zeros dropped; from 10^15 and
    under 10^-6, 4 significant digits and an exponent (a reason stays short whatever the query returns)."""
    if x != 0 and not 1e-6 <= abs(x) < 1e15:
        return f"{x:.4g}"
    text = f"{x:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _parse(text: str) -> float:
    return float(text.replace(",", ""))


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)
