"""``sqlsentinel_heartbeat``: the dead man's switch of ``heartbeat:``.

Every ``every`` the daemon ticks the sensor, which runs :func:`.health.check_health` in the code server (from the
sensor's instance and the state resource) and pings the heartbeat URL only when alerting is live. When it is not,
it pings nothing (or ``fail.url``, when set) and its tick says why. When the daemon itself is down no tick runs,
so the pings stop either way and the outside service (healthchecks.io, Opsgenie, Better Stack, Dead Man's
Snitch) pages.

The URL and headers are secrets: their ``${VAR}``\\ s are resolved at the ping and never logged; a failed ping
fails the tick with a message from which the URL, its path and query, and the headers' values are removed
(:func:`..notifiers.http.request`). The next tick pings again.
"""

# No `from __future__ import annotations` here: Dagster inspects the sensor's `context` annotation at runtime.

import os
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import dagster as dg

from .. import envsubst
from ..config import LoadedConfig
from ..config.heartbeat import Heartbeat
from ..errors import SecretResolutionError
from ..naming import PLAIN_NAMES, FileNames
from ..notifiers.base import DeliveryError
from ..notifiers.http import request
from ..state.store import StateStore
from .health import check_health
from .health_judging import HealthReport, HealthSettings, Mode
from .resources import AlertStateResource

__all__ = ["CHANNEL", "beat", "build_heartbeat_sensor", "ping", "settings_of"]

CHANNEL = "heartbeat"
"""How a failed ping names what failed (``heartbeat: HTTP 503 ...``)."""


def settings_of(heartbeat: Heartbeat) -> HealthSettings:
    """The health check's settings as ``heartbeat:`` sets them (the others at their defaults)."""
    return HealthSettings(grace=heartbeat.grace, queued_limit=heartbeat.queued_limit, failed_runs=heartbeat.failed_runs)


def build_heartbeat_sensor(
    config: LoadedConfig, mode: Mode = "jobs", names: FileNames = PLAIN_NAMES
) -> dg.SensorDefinition | None:
    """``sqlsentinel_heartbeat`` (RUNNING by default, every ``heartbeat.every``), or None without ``heartbeat:``.

    ``mode`` and ``names`` are those the file's definitions are built with: they name the schedules, sensors and
    jobs whose health it checks.
    """
    heartbeat = config.file.heartbeat
    if heartbeat is None:
        return None
    settings = settings_of(heartbeat)
    problems = [str(problem) for problem in config.problems]  # the file's, as loaded (the config sensor's too)
    fail = " (or its fail URL while not)" if heartbeat.fail is not None else ""

    @dg.sensor(
        name=names.heartbeat_sensor,
        minimum_interval_seconds=round(heartbeat.every),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Dead man's switch: ping the heartbeat URL of {config.path.name} while alerting is live{fail}; "
        "the tick says why when it does not.",
    )
    def sqlsentinel_heartbeat(
        context: dg.SensorEvaluationContext,
        sqlsentinel_state: AlertStateResource,  # the resource STATE_RESOURCE_KEY
    ) -> dg.SkipReason:
        instance = context.instance

        def open_store() -> StateStore:
            return sqlsentinel_state.get_store(instance)

        report = check_health(
            instance, config, open_store, mode=mode, names=names, settings=settings, problems=problems
        )
        try:
            said = beat(heartbeat, report)
        except (DeliveryError, SecretResolutionError) as exc:  # both redacted: no URL, no header value
            raise dg.Failure(description=f"{exc}; {report.summary()}") from None
        context.log.info(said)
        return dg.SkipReason(said)

    return sqlsentinel_heartbeat


def beat(heartbeat: Heartbeat, report: HealthReport, environ: Mapping[str, str] | None = None) -> str:
    """Ping for ``report``: the URL when live; when not, ``fail.url`` if set, else nothing. What was done, in one
    line. Raises :class:`DeliveryError` or :class:`SecretResolutionError` (neither shows a secret)."""
    if report.live:
        took = ping(heartbeat, heartbeat.url, "heartbeat.url", report.summary(), environ)
        return f"pinged ({took:.2f}s); {report.summary()}"
    if heartbeat.fail is not None:
        took = ping(heartbeat, heartbeat.fail.url, "heartbeat.fail.url", report.summary(), environ)
        return f"fail URL pinged ({took:.2f}s), the heartbeat URL not; {report.summary()}"
    return f"not pinged; {report.summary()}"


def ping(
    heartbeat: Heartbeat, template: str, where: str, summary: str, environ: Mapping[str, str] | None = None
) -> float:
    """One request to ``template`` (``${VAR}`` resolved now, from ``environ``, default the process's) with the
    heartbeat's method, headers and deadline; POST sends ``summary`` as text. Seconds it took."""
    env = os.environ if environ is None else environ
    url = envsubst.resolve(template, where, env)
    headers = {
        key: envsubst.resolve(value, f"heartbeat.headers.{key}", env) for key, value in heartbeat.headers.items()
    }
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DeliveryError(
            CHANNEL, f"{where} is not an http(s) URL once resolved (not shown: it may be a secret)", retryable=False
        )
    body = summary.encode("utf-8")[:10_000] if heartbeat.method == "POST" else None
    if body is not None:
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    started = time.monotonic()
    secrets = (url, *headers.values())
    request(
        CHANNEL, heartbeat.method, url.strip(), secrets=secrets, timeout=heartbeat.timeout, headers=headers, data=body
    )
    return time.monotonic() - started
