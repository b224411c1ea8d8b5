"""``sqlsentinel silence | unsilence | silences``: silence alerts, end silences, list them.

``silence`` creates the state tables if needed; the others refuse a database without them. A name no known alert
has is refused unless ``--force``; stored text is printed escaped. As in SQL Sentinel, ``--duration`` without a
unit is hours (:func:`.state.admin.parse_silence_duration`) and ``--reason`` may be left out
(:data:`.state.admin.NO_REASON`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import getpass
from typing import Any

import click

from ..config import LoadedConfig
from ..cycle.check_evaluations import rule_of
from ..state import admin
from ..state.acks import acknowledge
from ..state.history import known_alerts
from ..state.silences import Silence, parse_matcher
from ..state.store import StateStore
from .common import alert_and_file, database_errors, database_option, echo, echo_json, open_store, printable, when

__all__ = ["ack", "silence", "silences", "unsilence"]


def _refuse_unknown(name: str, store: StateStore, config: LoadedConfig | None) -> None:
    """A name that matches no known alert is a typo until proven otherwise (``--force``)."""
    if config is not None and rule_of(config.watch_rules, name) is not None:
        return  # an asset check one of the file's watch rules watches, notified yet or not
    known = known_alerts(store)
    known += sorted({n.partition("[")[0] for n in known if "[" in n and ":" in n})  # a partitioned check's name
    claimed = False  # the name starts with one of the file's watch rules, as the checks it watches do
    if config is not None:  # the file's alerts, and the checks its watch rules have recorded
        instances = [n for n in known if "{" in n and n.partition("{")[0] in config.alert_names]
        known = [*config.alert_names, *(n for n in known if rule_of(config.watch_rules, n) is not None), *instances]
        claimed = name.partition(":")[0] in {rule.name for rule in config.watch_rules}
    if (known or claimed) and name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        where = f"in {config.path}" if config is not None else "in the state database"
        raise click.ClickException(f"no alert named '{name}' {where}{hint}; --force to silence it anyway")


def _silence_row(silence: Silence, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": silence.id,
        "state": silence.state(now),
        "matchers": [str(m) for m in silence.matchers],
        "starts_at": when(silence.starts_at),
        "ends_at": when(silence.ends_at),
        "author": silence.author,
        "reason": silence.reason,
        "problems": silence.problems(),
    }


@click.command()
@click.argument("name", required=False)
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: silence alerts.yaml --alert NAME.")
@click.option("--force", is_flag=True, help="Silence NAME even though no known alert has that name.")
@click.option("--match", "matches", multiple=True, help="key=value, key=~regex (RE2) or key~glob; repeatable.")
@click.option(
    "--duration",
    help="How long: hours as a bare number (2, as in SQL Sentinel), or 30m, 2h, 1d; at most SQLSENTINEL_MAX_SILENCE "
    "(default 30d).",
)
@click.option("--until", help="When it ends, an ISO time.")
@click.option("--reason", help=f"Why; shown on every suppressed run. Default: {admin.NO_REASON}.")
@click.option("--author", help="Who; default: your user name.")
@database_option
@database_errors
def silence(
    name: str | None,
    alert_option: str | None,
    force: bool,
    matches: tuple[str, ...],
    duration: str | None,
    until: str | None,
    reason: str | None,
    author: str | None,
    database_url: str | None,
) -> None:
    """Silence the alert NAME (or every alert matching --match) for --duration or until --until.

    SQL Sentinel's form works too: silence alerts.yaml --alert NAME --duration HOURS (a bare number is hours).
    A NAME no known alert has (in the file given, or in the state database) is refused unless --force.
    A silence lasts at most 30 days, or what the environment variable SQLSENTINEL_MAX_SILENCE says (e.g. 90d)."""
    name, config = alert_and_file(name, alert_option)
    try:
        matchers = [parse_matcher(f"alert={name}")] if name else []
        matchers += [parse_matcher(m) for m in matches]
        if (duration is None) == (until is None):
            raise ValueError("give exactly one of --duration (e.g. 2h) or --until (e.g. 2026-12-01T09:00+01:00)")
        length = admin.parse_silence_duration(duration) if duration is not None else None
        end = _until(until) if until is not None else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    store = open_store(database_url)
    if name and not force:
        _refuse_unknown(name, store, config)
    try:
        ends_at = end if end is not None else store.clock() + (length or dt.timedelta())
        created = admin.add_silence(
            store,
            matchers,
            ends_at=ends_at,
            author=author or getpass.getuser(),
            reason=(reason or "").strip() or admin.NO_REASON,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    echo(f"silence {created.id}: {', '.join(map(str, created.matchers))} {created.describe()}")


def _until(text: str) -> dt.datetime:
    """``--until``: an ISO time; without a timezone, the local one."""
    try:
        ends_at = dt.datetime.fromisoformat(text)
        return ends_at if ends_at.tzinfo else ends_at.astimezone()
    except (ValueError, OverflowError):
        shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
        raise ValueError(f"--until {shown} is not an ISO time such as 2026-12-01T09:00+01:00") from None


@click.command()
@click.argument("target", required=False)
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: unsilence alerts.yaml --alert NAME.")
@database_option
@database_errors
def unsilence(target: str | None, alert_option: str | None, database_url: str | None) -> None:
    """End the silence with id TARGET, or the silences made for the alert named TARGET."""
    target, _ = alert_and_file(target, alert_option)
    if not target:
        raise click.ClickException("give a silence id or an alert name")
    store = open_store(database_url, create_tables=False)
    ended = admin.end_silences(store, target)
    if not ended:
        raise click.ClickException(f"no active or pending silence with id or alert name '{printable(target)}'")
    for silence_ in ended:
        echo(f"ended silence {silence_.id} ({', '.join(map(str, silence_.matchers))})")
    still = [s for s in admin.alert_statuses(store) if s.alert == target and s.silenced_by]
    for status_ in still:
        assert status_.silenced_by is not None
        echo(f"note: '{target}' is still {status_.silenced_by.describe()} (silence {status_.silenced_by.id})")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@database_errors
def silences(show_all: bool, as_json: bool, database_url: str | None) -> None:
    """Pending and active silences (--all: expired ones too)."""
    store = open_store(database_url, create_tables=False)
    now = store.clock()
    rows = [_silence_row(s, now) for s in admin.list_silences(store, include_expired=show_all)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no silences")
    for row in rows:
        echo(
            f"{row['id']}  {row['state']:<8} {', '.join(row['matchers'])}  {row['starts_at']} -> {row['ends_at']}  "
            f"by {row['author']}: {row['reason']}"
        )
        if row["problems"]:
            echo(f"  silences nothing, its matchers cannot be evaluated: {'; '.join(row['problems'])}")


@click.command()
@click.argument("name")
@click.option("--reason", required=True, help="What is being done; shown in messages and status.")
@click.option("--author", help="Who is on it; default: your user name.")
@database_option
@database_errors
def ack(name: str, reason: str, author: str | None, database_url: str | None) -> None:
    """Acknowledge the firing alert (or instance) NAME: no reminders until it resolves; its resolved notice still
    goes out, and PagerDuty gets the acknowledge event. An instance alert's NAME acknowledges all its firing
    instances."""
    store = open_store(database_url, create_tables=False)
    try:
        names = acknowledge(store, name, author=author or getpass.getuser(), reason=reason)
    except ValueError as exc:
        raise click.ClickException(printable(str(exc))) from None
    for each in names:
        echo(f"acknowledged {each}")
