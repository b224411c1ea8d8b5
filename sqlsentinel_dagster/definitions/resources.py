"""Dagster resources: the warehouse connections alert jobs query."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine, make_url

from .. import envsubst
from .._yaml import MAX_FILE_BYTES
from ..config import AlertConfig, LoadedConfig, load_config
from ..config.compiled import load_compiled, save_compiled
from ..cycle.evaluate import evaluate_query
from ..cycle.results import AlertResult
from ..errors import AlertQueryError, StateDatabaseError
from ..notifiers.registry import ChannelSettings, smtp_from_env
from ..notifiers.retry import RetryPolicy
from ..sql.drivers import create_warehouse_engine, driver_problem, missing_sqlite_file, resolve_sqlite_path, sqlite_file
from ..state.store import StateStore
from .instance_db import instance_state_url

__all__ = ["AlertStateResource", "NotificationsResource", "WarehouseResource", "cached_config", "use_config"]


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A warehouse named in an alerts file, connected with SQLAlchemy inside the run.

    The resource's config holds only where the URL is written (file and database name), never the URL itself:
    ``${VAR}`` references and any password are resolved in the run process, so the Dagster UI, run config
    and event log never show them.
    """

    config_path: str = Field(description="Absolute path of the alerts file that defines this warehouse.")
    database: str = Field(description="Name of the warehouse in the file ('default' for the single `database:` form).")

    def get_engine(self) -> Engine:
        """A pooled SQLAlchemy engine for this warehouse (one per URL and process)."""
        return _engine(self._resolved_url(f"database '{self.database}'"), self.pool_size())

    def pool_size(self) -> int:
        """How many connections to this warehouse may be open at once (the file's ``pool_size``)."""
        return cached_config(self.config_path).file.all_databases()[self.database].pool_size

    def evaluate(self, alert: AlertConfig) -> AlertResult:
        """Run ``alert``'s query on this warehouse, read-only and bounded by the alert's timeout."""
        url = envsubst.resolve_url(self._url_template(), f"alert '{alert.name}': database '{self.database}' url")
        folder = cached_config(self.config_path).path.parent
        missing = missing_sqlite_file(url, folder)  # before connecting: SQLite may create it
        try:
            url = resolve_sqlite_path(url, folder)
            password = make_url(url).password
            engine = _engine(url, self.pool_size())
        except (sa.exc.ArgumentError, ValueError, ImportError) as exc:  # the message may hold the URL: not shown
            cause = driver_problem(url) or f"the URL is not usable ({type(exc).__name__}); check its port and parts"
            raise AlertQueryError(alert.name, self.database, cause) from None
        try:
            return evaluate_query(
                engine,
                alert=alert.name,
                database=self.database,
                query=alert.query,
                timeout=alert.timeout,
                secrets=[str(password)] if password else [],
                rows=alert.rows,
                status_required=alert.baseline is None,
                instances=alert.instances,
                no_data=alert.no_data,
            )
        except AlertQueryError as exc:
            if missing is None:
                raise
            file = sqlite_file(url, folder)
            created = "; SQLite created it, empty, at this run" if file is not None and file.is_file() else ""
            raise AlertQueryError(alert.name, self.database, f"{exc.cause} ({missing}{created})") from None

    def _url_template(self) -> str:
        return cached_config(self.config_path).file.all_databases()[self.database].url

    def _resolved_url(self, where: str) -> str:
        url = envsubst.resolve_url(self._url_template(), where)
        return resolve_sqlite_path(url, cached_config(self.config_path).path.parent)


class AlertStateResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where alert state, silences, the notification ledger and history live.

    By default: the Dagster instance's own database (SQLite under ``DAGSTER_HOME``, or the Postgres database of
    ``dagster-postgres``), in tables prefixed ``sqlsentinel_``. Set ``database_url`` where user code cannot
    reach the instance's storage (e.g. Dagster+), preferably with ``dg.EnvVar``.
    """

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL for the state tables; default: STATE_DB_URL if set, else the Dagster instance's "
        "own database.",
    )
    notification_expiry_hours: float = Field(
        default=24.0,
        description="A notification still undelivered after this many hours is given up (marked expired).",
    )
    history_retention_days: float = Field(
        default=30.0,
        description="The daily sqlsentinel_prune job deletes history and finished notifications older than this.",
    )
    delivery_lease_seconds: float = Field(
        default=300.0,
        description="How long a run may hold a notification it is sending before another run may retry it.",
    )

    def get_store(self, instance: dg.DagsterInstance | None = None) -> StateStore:
        """The store for ``database_url``, or for the given instance's database (one per URL and process)."""
        url = self.database_url or os.environ.get("STATE_DB_URL")  # STATE_DB_URL: SQL Sentinel's variable
        if url:
            return _store(envsubst.resolve_url(url, "AlertStateResource.database_url"))
        if instance is None:
            raise RuntimeError("AlertStateResource needs the Dagster instance or a database_url")
        return _store(instance_state_url(instance))


class NotificationsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Settings every channel shares: the SMTP server, links to the Dagster UI, retries and timeouts.

    Unset SMTP fields fall back to SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_USE_TLS,
    SMTP_SECURITY and SMTP_FROM_ADDRESS, read inside the run. Pass secrets with ``dg.EnvVar``.
    """

    webserver_base_url: str | None = Field(
        default=None, description="Base URL of the Dagster UI (e.g. https://dagster.example.com) for run links."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; default SMTP_HOST.")
    smtp_port: int | None = Field(default=None, description="Default SMTP_PORT, else 587 / 465 (ssl) / 25 (none).")
    smtp_security: str | None = Field(
        default=None, description="'starttls', 'ssl' (implicit TLS) or 'none'; default from SMTP_SECURITY/SMTP_USE_TLS."
    )
    smtp_username: str | None = Field(default=None, description="Login user; default SMTP_USERNAME.")
    smtp_password: str | None = Field(default=None, description="Login password; default SMTP_PASSWORD.")
    smtp_from_address: str | None = Field(default=None, description="From address; default SMTP_FROM_ADDRESS.")
    smtp_verify_tls: bool = Field(default=True, description="Check the SMTP server's TLS certificate.")
    smtp_ca_file: str | None = Field(default=None, description="CA bundle for the SMTP server's certificate.")
    slack_api_url: str = Field(default="https://slack.com/api", description="Slack Web API base (bot tokens).")
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API v2 endpoint."
    )
    timeout_seconds: float = Field(default=10.0, description="Timeout of every network call to a channel.")
    max_attempts: int = Field(default=3, description="Tries per notification in one run (retryable errors only).")
    retry_base_delay_seconds: float = Field(
        default=1.0, description="Wait before the second try; doubled each try, with jitter."
    )

    def channel_settings(self) -> ChannelSettings:
        """The settings, with SMTP defaults from the environment resolved now."""
        smtp = smtp_from_env(
            os.environ,
            host=self.smtp_host,
            port=self.smtp_port,
            security=self.smtp_security,
            username=self.smtp_username,
            password=self.smtp_password,
            from_address=self.smtp_from_address,
            verify_tls=self.smtp_verify_tls,
            ca_file=self.smtp_ca_file,
            timeout=self.timeout_seconds,
        )
        retry = RetryPolicy(self.max_attempts, self.retry_base_delay_seconds)
        return ChannelSettings(
            smtp=smtp,
            webserver_base_url=self.webserver_base_url,
            slack_api_url=self.slack_api_url,
            pagerduty_events_url=self.pagerduty_events_url,
            timeout=self.timeout_seconds,
            retry=retry,
        )


_STORES: dict[str, StateStore] = {}
_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def _store(url: str) -> StateStore:
    with _LOCK:
        if url not in _STORES:
            try:
                _STORES[url] = StateStore.from_url(url)
            except (sa.exc.ArgumentError, ValueError, ImportError) as exc:  # the message may hold the URL
                cause = driver_problem(url) or f"the URL is not usable ({type(exc).__name__}); check its port and parts"
                raise StateDatabaseError(f"the state database URL: {cause}") from None
        return _STORES[url]


def _engine(url: str, pool_size: int) -> Engine:
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = create_warehouse_engine(url, pool_size)
        return _ENGINES[url]


_CONFIGS: dict[str, tuple[int, LoadedConfig]] = {}
_MISSING = -1  # the "modification time" of a file that does not exist


def cached_config(path: str | os.PathLike[str], *, compiled: bool = False) -> LoadedConfig:
    """``load_config(path, strict=False)``, reused while the file is unchanged (definitions and runs share one
    load): problems are in ``problems``, and the alerts they concern are left out.

    ``compiled``: read the validated form an earlier load of the same bytes saved (see ``config.compiled``),
    when there is one, instead of parsing: a run worker then reads only the alerts it runs. Every full load
    saves that form.
    """
    key = str(Path(path).resolve())
    try:
        mtime = Path(key).stat().st_mtime_ns
    except OSError:
        mtime = _MISSING
    hit = _CONFIGS.get(key)
    if hit is not None and hit[0] == mtime:
        return hit[1]  # for a missing file: its last valid version, when use_config() set one
    try:
        with open(key, "rb") as stream:
            content = stream.read(MAX_FILE_BYTES + 1)  # never more: a huge file is refused by load_config
    except OSError:
        return load_config(key, strict=False)  # no alerts, and the problem naming the file and the cause
    if len(content) > MAX_FILE_BYTES:
        return load_config(key, strict=False)
    config: LoadedConfig | None = load_compiled(Path(key), content, os.environ) if compiled else None
    if config is None:
        try:
            text: str | None = content.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        config = load_config(key, text=text, strict=False)
        save_compiled(config, content)
    _CONFIGS[key] = (mtime, config)
    return config


def use_config(path: str | os.PathLike[str], config: LoadedConfig) -> None:
    """Serve ``config`` for ``path`` (as long as the file is unchanged), e.g. its last valid version."""
    key = str(Path(path).resolve())
    try:
        _CONFIGS[key] = (Path(key).stat().st_mtime_ns, config)
    except OSError:
        _CONFIGS[key] = (_MISSING, config)
