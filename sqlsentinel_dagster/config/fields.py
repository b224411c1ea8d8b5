"""The value types of ``alerts.yaml``'s fields, each validated with a message that says what is allowed: cron
expressions, timezones, durations, owners, tag keys, queries, asset keys, receiver names."""

from __future__ import annotations

import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BeforeValidator, Field

from .._dagster import is_valid_cron
from ..cron_fields import describe_cron_problem
from ..durations import parse_duration
from .targets import CHANNELS, EMAIL_PATTERN

__all__ = [
    "MAX_TIMEOUT_SECONDS",
    "AssetKeyPath",
    "Cron",
    "Duration",
    "Owner",
    "Query",
    "ReceiverName",
    "Streak",
    "TagKey",
    "TagValue",
    "Timeout",
    "Timezone",
    "as_list",
]

_TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")


def _cron(value: str) -> str:
    if not is_valid_cron(value):
        raise ValueError(f"invalid cron expression '{value}': {describe_cron_problem(value)}")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        import difflib

        close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(
            f"unknown timezone '{value}'; use an IANA name such as 'UTC' or 'Europe/Paris'{hint}"
        ) from None
    return value


MAX_TIMEOUT_SECONDS = 86_400.0


def _timeout(seconds: float) -> float:
    if seconds > MAX_TIMEOUT_SECONDS:
        raise ValueError(
            f"timeout of {seconds:.0f}s is more than a day (at most {MAX_TIMEOUT_SECONDS:g}s); a query that long "
            "would outlive its schedule, and databases cap statement timeouts"
        )
    return seconds


def _owner(value: str) -> str:
    if EMAIL_PATTERN.match(value) or (value.startswith("team:") and len(value) > 5):
        return value
    raise ValueError(f"invalid owner '{value}'; use an email address or a team name prefixed with 'team:'")


def _tag_key(value: str) -> str:
    if not _TAG_KEY.match(value):
        raise ValueError(
            f"invalid tag key '{value}'; allowed: letters, digits, '_', '-', '.', at most 63 characters, "
            "optionally one 'namespace/' prefix"
        )
    return value


def _scalar_to_text(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else str(value) if isinstance(value, int | float) else value


def _query(value: str) -> str:
    if not value.strip():
        raise ValueError("the query is empty; write a SELECT that returns a 'status' column ('ALERT' or 'OK')")
    return value


def as_list(value: Any) -> Any:
    """One mapping as a list of it (a receiver written as one target)."""
    return [value] if isinstance(value, dict) else value


_ASSET_KEY_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def _asset_key(value: Any) -> tuple[str, ...]:
    parts = value.split("/") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or not parts or not all(isinstance(p, str) for p in parts):
        raise ValueError(f"invalid asset key {value!r}; write 'shop/orders' or a list such as ['shop', 'orders']")
    bad = [p for p in parts if not _ASSET_KEY_PART.match(p)]
    if bad:
        raise ValueError(
            f"invalid asset key {value!r}: part {bad[0]!r} is empty or has characters other than letters, digits, "
            "'_', '-' and '.'; write 'shop/orders' or ['shop', 'orders']"
        )
    return tuple(parts)


def _receiver_name(value: str) -> str:
    if value in CHANNELS:
        raise ValueError(f"'{value}' is a channel name; give the receiver another name")
    return value


ReceiverName = Annotated[str, AfterValidator(_receiver_name)]
Cron = Annotated[str, AfterValidator(_cron)]
Timezone = Annotated[str, AfterValidator(_timezone)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Timeout = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_timeout)]
Owner = Annotated[str, AfterValidator(_owner)]
TagKey = Annotated[str, AfterValidator(_tag_key)]
TagValue = Annotated[str, BeforeValidator(_scalar_to_text)]
Streak = Annotated[int, Field(ge=1, le=1000)]
Query = Annotated[str, AfterValidator(_query)]
AssetKeyPath = Annotated[tuple[str, ...], BeforeValidator(_asset_key)]
