"""``heartbeat:`` in alerts.yaml: a dead man's switch. While alerting is live, the ``sqlsentinel_heartbeat``
sensor pings an outside URL (healthchecks.io, Opsgenie or Better Stack heartbeats, Dead Man's Snitch); when it is
not, or when the daemon is gone, the pings stop and that service pages.

.. code-block:: yaml

    heartbeat:
      url: "${HEARTBEAT_URL}"        # a secret: resolved only when pinging, never shown
      every: 1m                      # 10s to 1h
      method: GET                    # GET (default), HEAD or POST (POST sends the health summary as text)
      headers: {Authorization: "GenieKey ${OPSGENIE_KEY}"}
      timeout: 10s
      fail: {url: "${HEARTBEAT_URL}/fail"}   # optional: pinged instead while alerting is not live
      grace: 2m                      # how late a schedule's or sensor's tick may be
      queued_limit: 10m              # how long an alert run may wait in the run queue
      failed_runs: 3                 # checks mode: this many failed batch runs in a row is not live (0: never)

Like every value that may hold a secret, ``url``, ``fail.url`` and ``headers`` keep their ``${VAR}`` text until
the ping (the loader defers keys named ``url`` and ``headers``), so the Dagster UI, logs and tick messages never
show them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from ..durations import format_duration, parse_duration
from .targets import Secret

__all__ = ["MAX_EVERY", "MIN_EVERY", "Heartbeat", "HeartbeatFail"]

MIN_EVERY = 10.0
"""Seconds: the shortest ``every`` (a tick runs the health check and one request)."""
MAX_EVERY = 3600.0
"""Seconds: the longest ``every`` (outside services expect a ping at least hourly)."""


def _between(low: float, high: float) -> Any:
    def check(seconds: float) -> float:
        if not low <= seconds <= high:
            span = f"{_shown(low)} and {_shown(high)}"
            raise ValueError(f"must be between {span}, got {_shown(seconds)}")
        return seconds

    return AfterValidator(check)


def _shown(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 60 else format_duration(dt.timedelta(seconds=seconds))


def _http_url(value: str) -> str:
    """A URL written out must be http(s); one from ``${VAR}`` is checked when it is resolved, at the ping."""
    if "${" in value:
        return value
    scheme = urlsplit(value).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(value).hostname:
        raise ValueError("expected an http:// or https:// URL (or ${VAR}); the value is not shown: it may be a secret")
    return value


PingUrl = Annotated[Secret, AfterValidator(_http_url)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]


class HeartbeatFail(BaseModel):
    """Where to ping instead while alerting is not live (healthchecks.io and Better Stack: the URL + ``/fail``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: PingUrl = Field(description="The failure URL, e.g. ${HEARTBEAT_URL}/fail; a secret, like the ping URL")


class Heartbeat(BaseModel):
    """``heartbeat:``: ping ``url`` every ``every`` while alerting is live (the ``sqlsentinel_heartbeat`` sensor)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: PingUrl = Field(description="The URL to ping, e.g. ${HEARTBEAT_URL}; resolved only when pinging")
    every: Annotated[Seconds, _between(MIN_EVERY, MAX_EVERY)] = Field(
        default=60.0, description="How often the sensor checks health and pings (10s to 1h)"
    )
    method: Annotated[Literal["GET", "HEAD", "POST"], BeforeValidator(lambda v: str(v).upper())] = Field(
        default="GET", description="GET (default), HEAD, or POST, which sends the one-line health summary as text"
    )
    headers: dict[str, Secret] = Field(
        default_factory=dict, description="Headers of each ping, e.g. Authorization: GenieKey ${OPSGENIE_KEY}"
    )
    timeout: Annotated[Seconds, _between(1.0, 30.0)] = Field(
        default=10.0, description="Deadline of one ping: connect, send and answer (1s to 30s)"
    )
    fail: HeartbeatFail | None = Field(
        default=None, description="Pinged instead while alerting is not live (default: no ping at all)"
    )
    grace: Annotated[Seconds, _between(1.0, 86_400.0)] = Field(
        default=120.0, description="How late a tick of the file's schedules and sensors may be (1s to 1d)"
    )
    queued_limit: Annotated[Seconds, _between(1.0, 7 * 86_400.0)] = Field(
        default=600.0, description="How long an alert run may stay queued (1s to 7d)"
    )
    failed_runs: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Checks mode: the latest this many finished batch runs all failed is not live (0: not checked)",
    )
