"""`group: true` within every channel's limits: a storm of alerts is split into parts ("part 2 of 5"), each part
claimed and recorded in the ledger for exactly the alerts it lists, one refused part failing only its own alerts.

Delivery is driven at the level of `deliver_grouped` on a real SQLite state store (2,000 recorded alerts, seeded
once and copied per test), real notifiers, and loopback Slack, Teams, webhook and SMTP servers that refuse what
the real services refuse.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sqlsentinel_dagster.notifiers import (
    DeliveryReport,
    EmailNotifier,
    LogNotifier,
    MSTeamsNotifier,
    RetryPolicy,
    SlackNotifier,
    SmtpSettings,
    WebhookNotifier,
    deliver_grouped,
)
from sqlsentinel_dagster.notifiers.base import Notifier
from sqlsentinel_dagster.notifiers.parts import CUT, Part, split_parts
from sqlsentinel_dagster.notifiers.slack import slack_payload
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.schema import notifications
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore, create_state_engine

from .loopback import TEAMS_MAX_BYTES, Receiver, loopback_receiver, slack_limits, teams_limits
from .smtp_server import smtp_server

STORM = [f"warehouse.orders_table_{i:04d}_freshness" for i in range(2000)]
CHANNELS = {"0:slack": {"firing"}, "1:msteams": {"firing"}, "2:email": {"firing"}, "3:log": {"firing"}}
NO_WAIT = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0)
PART = re.compile(r"\(part (\d+) of (\d+)\)")


def fast_store(path: Path) -> StateStore:
    """A real SQLite state store on ``path``, without fsync (thousands of short transactions in seconds)."""
    engine = create_state_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    return StateStore(engine)


def record(store: StateStore, names: list[str], channels: Mapping[str, set[str]], **values: Any) -> None:
    """Record each of ``names`` firing (7 > 5), with a pending notification on each of ``channels``."""
    for name in names:
        payload = {
            "alert_name": name,
            "status": "ALERT",
            "actual_value": 7,
            "threshold": 5,
            "context": {},
            "error": None,
            "description": "Orders table not loaded in the last hour",
            "severity": "critical",
            "run_url": "http://dagster.local/runs/run-1",
            **values,
        }
        outcome = Outcome("ALERT", 7, 5)
        store.record(AlertLabels(name, "critical"), outcome, StateSettings(), channels, payload, "run-1")


pytestmark = pytest.mark.xdist_group("group_limits")  # one xdist worker: the module-scoped fixture below is made once


@pytest.fixture(scope="module")
def storm_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state database where 2,000 alerts fired, each with a pending notification per channel of CHANNELS."""
    path = tmp_path_factory.mktemp("storm") / "state.db"
    store = fast_store(path)
    record(store, STORM, CHANNELS)
    store.engine.dispose()
    return path


@pytest.fixture
def store(storm_ledger: Path, tmp_path: Path) -> Iterator[StateStore]:
    """A copy of the storm's ledger for one test."""
    copy = tmp_path / "state.db"
    shutil.copy(storm_ledger, copy)
    state = fast_store(copy)
    yield state
    state.engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as rec:
        yield rec


def deliver(
    store: StateStore, notifier: Notifier, channel: str, names: list[str] = STORM
) -> dict[str, list[DeliveryReport]]:
    """One run delivering ``names``' notifications on ``channel`` grouped."""
    return deliver_grouped(store, {n: [channel] for n in names}, notifier, run_id="run-2", retry=NO_WAIT)


def ledger(store: StateStore, channel: str) -> Counter[str]:
    """How many of the channel's notifications are in each status."""
    query = sa.select(notifications.c.status).where(notifications.c.channel == channel)
    with store.engine.connect() as conn:
        return Counter(conn.execute(query).scalars())


def statuses(store: StateStore, channel: str) -> dict[str, str]:
    """Each alert's notification status on ``channel``."""
    query = sa.select(notifications.c.alert, notifications.c.status).where(notifications.c.channel == channel)
    with store.engine.connect() as conn:
        return {alert: status for alert, status in conn.execute(query)}


def teams_alerts(body: dict[str, Any]) -> list[str]:
    """The alerts a grouped Teams card lists (one fact each: ``[FIRING] <name> (critical)``)."""
    facts = body["attachments"][0]["content"]["body"][1]["facts"]
    return [fact["title"].split(" ")[1] for fact in facts]


def teams_headline(body: dict[str, Any]) -> str:
    return str(body["attachments"][0]["content"]["body"][0]["text"])


def slack_alerts(body: dict[str, Any]) -> list[str]:
    """The alerts a grouped Slack message lists (one line each: ``*[FIRING]* <name> (critical)...``)."""
    lines = [line for block in body["blocks"][1:] for line in block["text"]["text"].splitlines()]
    return [line.split(" ")[1] for line in lines]


def numbering(headlines: list[str]) -> list[tuple[int, int]]:
    """The ``(part n of total)`` of each headline, in order."""
    found = [PART.search(h) for h in headlines]
    return [(int(m.group(1)), int(m.group(2))) for m in found if m]


class TestStormOfTwoThousand:
    def test_teams_gets_every_alert_once_in_cards_under_28_kb(self, store: StateStore, receiver: Receiver) -> None:
        """2,000 alerts to a grouped Teams target: numbered cards under 28 KB that list each alert exactly once,
        and the ledger records each of the 2,000 delivered."""
        receiver.limits = teams_limits
        reports = deliver(store, MSTeamsNotifier(receiver.url), "1:msteams")
        bodies = [r.body for r in receiver.requests]
        assert len(bodies) > 1 and all(r.answered == 200 for r in receiver.requests)
        assert max(len(json.dumps(b).encode()) for b in bodies) <= TEAMS_MAX_BYTES
        listed = [name for body in bodies for name in teams_alerts(body)]
        assert sorted(listed) == STORM
        assert numbering([teams_headline(b) for b in bodies]) == [(n, len(bodies)) for n in range(1, len(bodies) + 1)]
        assert ledger(store, "1:msteams") == {"delivered": 2000}
        assert {r.outcome for rs in reports.values() for r in rs} == {"delivered"}
        assert sum(len(rs) for rs in reports.values()) == 2000

    def test_slack_gets_every_alert_once_within_its_block_and_text_limits(
        self, store: StateStore, receiver: Receiver
    ) -> None:
        """2,000 alerts to a grouped Slack target: no message over 50 blocks or 3,000 characters per section,
        every alert listed exactly once, each recorded delivered once."""
        receiver.limits = slack_limits
        deliver(store, SlackNotifier(webhook_url=receiver.url), "0:slack")
        bodies = [r.body for r in receiver.requests]
        assert len(bodies) > 1 and all(r.answered == 200 for r in receiver.requests)
        assert max(len(b["blocks"]) for b in bodies) <= 50
        assert sorted(name for body in bodies for name in slack_alerts(body)) == STORM
        assert numbering([b["text"] for b in bodies]) == [(n, len(bodies)) for n in range(1, len(bodies) + 1)]
        assert ledger(store, "0:slack") == {"delivered": 2000}

    def test_a_part_refused_as_too_large_fails_only_its_own_alerts(self, store: StateStore, receiver: Receiver) -> None:
        """Teams answers 413 to part 2 only: exactly the alerts part 2 lists are recorded failed, every other
        alert delivered; the other parts were sent all the same."""
        receiver.fail_with, receiver.fail_when = 413, lambda body: "(part 2 of" in teams_headline(body)
        reports = deliver(store, MSTeamsNotifier(receiver.url), "1:msteams")
        (refused,) = [r.body for r in receiver.requests if r.answered == 413]  # not retryable: one try
        lost = set(teams_alerts(refused))
        delivered = [name for r in receiver.delivered() for name in teams_alerts(r.body)]
        assert lost and sorted([*lost, *delivered]) == STORM
        assert {a for a, s in statuses(store, "1:msteams").items() if s != "delivered"} == lost
        assert ledger(store, "1:msteams") == {"delivered": 2000 - len(lost), "failed": len(lost)}
        assert {a for a, rs in reports.items() if rs[0].outcome == "failed"} == lost
        assert all("part 2 of" in rs[0].part for a, rs in reports.items() if a in lost)

    def test_a_part_failing_with_500_is_retried_alone_by_the_next_run(
        self, store: StateStore, receiver: Receiver
    ) -> None:
        """Slack answers 500 to part 3 on every try: its alerts stay pending, the rest are delivered; the next run
        sends exactly those alerts, and every alert was delivered exactly once."""
        receiver.limits = slack_limits
        receiver.fail_with, receiver.fail_when = 500, lambda body: "(part 3 of" in body["text"]
        deliver(store, SlackNotifier(webhook_url=receiver.url), "0:slack")
        failed = [r for r in receiver.requests if r.answered == 500]
        assert len(failed) == 2 and failed[0].body == failed[1].body  # retried as it was, per part
        pending = set(slack_alerts(failed[0].body))
        assert {a for a, s in statuses(store, "0:slack").items() if s == "pending"} == pending
        first_run = len(receiver.requests)
        receiver.fail_with = None
        deliver(store, SlackNotifier(webhook_url=receiver.url), "0:slack")
        deliver(store, SlackNotifier(webhook_url=receiver.url), "0:slack")  # a third run has nothing to send
        retried = receiver.requests[first_run:]
        assert sorted(name for r in retried for name in slack_alerts(r.body)) == sorted(pending)
        assert sorted(name for r in receiver.delivered() for name in slack_alerts(r.body)) == STORM
        assert ledger(store, "0:slack") == {"delivered": 2000}

    def test_a_log_target_writes_bounded_records_listing_every_alert_once(
        self, store: StateStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """2,000 alerts to a grouped log target: several records of at most 32,000 characters, each alert on one
        line of exactly one of them."""
        logger = logging.getLogger("sqlsentinel.test.group")
        with caplog.at_level(logging.WARNING, logger=logger.name):
            deliver(store, LogNotifier(logger), "3:log")
        records = [r.getMessage() for r in caplog.records if r.name == logger.name]
        assert len(records) > 1 and max(len(r) for r in records) <= 32_000
        lines = [line for r in records for line in r.splitlines()[1:]]
        assert sorted(line.split(" ")[3] for line in lines) == STORM
        assert ledger(store, "3:log") == {"delivered": 2000}


class TestEmailAndWebhook:
    def test_email_lists_at_most_200_alerts_per_mail(self, store: StateStore, tmp_path: Path) -> None:
        """450 alerts to a grouped email: three mails (part 1, 2, 3 of 3 in the subject), each table at most 200
        rows, every alert in exactly one."""
        names = STORM[:450]
        with smtp_server(tmp_path) as box:
            notifier = EmailNotifier(SmtpSettings(host=box.host, port=box.port, security="none"), ["a@example.com"])
            deliver(store, notifier, "2:email", names)
        subjects = [str(m["Subject"]) for m in box.messages]
        assert numbering(subjects) == [(1, 3), (2, 3), (3, 3)]
        tables = [m.get_body(("html",)).get_content() for m in box.messages]  # type: ignore[union-attr]
        rows = [re.findall(r"<tr><td>([^<]+)</td>", t) for t in tables]
        assert max(len(r) for r in rows) <= 200 and sorted(n for r in rows for n in r) == names
        assert ledger(store, "2:email") == {"delivered": 450, "pending": 2000 - 450}

    def test_webhook_posts_stay_under_1_mb_each_with_their_own_key(self, tmp_path: Path, receiver: Receiver) -> None:
        """120 alerts of about 20 KB each to a grouped webhook: several JSON arrays of at most 1,000,000 bytes,
        each alert in exactly one, each post with its own Idempotency-Key."""
        store = fast_store(tmp_path / "state.db")
        names = STORM[:120]
        record(store, names, {"0:webhook": {"firing"}}, context={f"c{i}": "x" * 999 for i in range(20)})
        deliver(store, WebhookNotifier(receiver.url), "0:webhook", names)
        posts = receiver.delivered()
        assert len(posts) >= 3 and max(len(json.dumps(p.body).encode()) for p in posts) <= 1_000_000
        assert sorted(m["alert_name"] for p in posts for m in p.body) == names
        assert len({p.headers["Idempotency-Key"] for p in posts}) == len(posts)
        assert ledger(store, "0:webhook") == {"delivered": 120}


class TestOneMessageOverALimit:
    def test_a_grouped_alert_too_big_on_its_own_is_cut_not_refused(self, tmp_path: Path, receiver: Receiver) -> None:
        """An alert whose error alone makes a 60,000-character card is sent cut (ending in …cut) under 28 KB,
        with the other alerts of the group, instead of being refused."""
        store = fast_store(tmp_path / "state.db")
        record(store, STORM[:2], {"0:msteams": {"firing"}})
        record(store, ["huge_error"], {"0:msteams": {"firing"}}, error="database said: " + "e" * 60_000)
        receiver.limits = teams_limits
        deliver(store, MSTeamsNotifier(receiver.url), "0:msteams", ["huge_error", *STORM[:2]])
        (request,) = receiver.requests
        assert request.answered == 200
        facts = request.body["attachments"][0]["content"]["body"][1]["facts"]
        (huge,) = [f["value"] for f in facts if "huge_error" in f["title"]]
        assert CUT in huge and len(huge) < 20_000
        assert ledger(store, "0:msteams") == {"delivered": 3}

    def test_a_slack_message_with_a_long_error_is_cut_not_refused(self, receiver: Receiver) -> None:
        """One alert (not grouped) with a 10,000-character database error: Slack accepts it, the error cut."""
        receiver.limits = slack_limits
        message = {"alert_name": "a", "event": "error", "status": "ERROR", "error": "boom " * 2000}
        SlackNotifier(webhook_url=receiver.url).send(message)
        (request,) = receiver.requests
        assert request.answered == 200 and CUT in json.dumps(request.body, ensure_ascii=False)

    def test_a_teams_card_with_huge_context_is_cut_not_refused(self, receiver: Receiver) -> None:
        """One alert (not grouped) whose 50 context values make a 50 KB card: Teams accepts it, values cut."""
        receiver.limits = teams_limits
        message = {"alert_name": "a", "event": "firing", "context": {f"c{i}": "v" * 1000 for i in range(50)}}
        MSTeamsNotifier(receiver.url).send(message)
        (request,) = receiver.requests
        assert request.answered == 200 and CUT in json.dumps(request.body, ensure_ascii=False)


def test_a_slack_text_template_failing_on_one_alert_holds_back_no_alert(tmp_path: Path, receiver: Receiver) -> None:
    """A grouped Slack target whose `text:` template fails on one alert (no value to round) sends that alert's
    default line, saying so, and delivers every alert of the group."""
    store = fast_store(tmp_path / "state.db")
    record(store, ["rounded"], {"0:slack": {"firing"}}, actual_value=7.25)
    record(store, ["no_value"], {"0:slack": {"firing"}}, actual_value=None)
    notifier = SlackNotifier(webhook_url=receiver.url, text_template="value {{ actual_value | round(1) }}")
    reports = deliver(store, notifier, "0:slack", ["rounded", "no_value"])
    assert {name: [r.outcome for r in rs] for name, rs in reports.items()} == {
        "rounded": ["delivered"],
        "no_value": ["delivered"],
    }
    [body] = [r.body for r in receiver.delivered()]
    text = json.dumps(body)
    assert "value 7.2" in text and "the text template failed" in text and "no_value" in text
    assert ledger(store, "0:slack") == {"delivered": 2}


class TestSplitParts:
    def measure(self, part: Part) -> dict[str, int]:
        return {"items": len(part.messages), "chars": sum(len(json.dumps(m)) for m in part.messages)}

    def test_every_message_lands_in_exactly_one_part_in_order(self) -> None:
        """Parts keep the messages' order, cover each once, each fits, and are numbered 1..n of n."""
        messages = [{"n": i, "text": "x" * (i % 37)} for i in range(1000)]
        parts = split_parts(messages, self.measure, {"items": 64, "chars": 2_000})
        assert [p for part in parts for p in part.positions] == list(range(1000))
        assert [m["n"] for part in parts for m in part.messages] == list(range(1000))
        assert all(self.measure(p)["items"] <= 64 and self.measure(p)["chars"] <= 2_000 for p in parts)
        assert [(p.number, p.total) for p in parts] == [(n, len(parts)) for n in range(1, len(parts) + 1)]
        assert parts[1].label == f"part 2 of {len(parts)}"

    def test_parts_are_as_large_as_fit(self) -> None:
        """Greedy: every part but the last would be over a limit with the next message added."""
        messages = [{"text": "y" * (i % 50)} for i in range(500)]
        limits = {"chars": 3_000}
        parts = split_parts(messages, self.measure, limits)
        for part, following in itertools.pairwise(parts):
            grown = Part((*part.messages, following.messages[0]), (*part.positions, following.positions[0]))
            assert self.measure(grown)["chars"] > limits["chars"]

    def test_a_message_too_big_alone_is_shortened_and_says_what_was_cut(self) -> None:
        """A message over the limit on its own is cut (texts ending in …cut, lists shortened), lists what was cut
        under `cut`, and keeps its identity and link whole."""
        big = {
            "alert_name": "a",
            "idempotency_key": "k" * 300,
            "run_url": "http://x/" + "r" * 300,
            "error": "e" * 50_000,
            "rows": [{"id": i} for i in range(5_000)],
        }
        _, part = split_parts([{"alert_name": "small"}, big], self.measure, {"chars": 5_000})
        (shortened,) = part.messages
        assert self.measure(part)["chars"] <= 5_000 and shortened["error"].endswith(CUT)
        assert shortened["cut"] == ["error", "rows"] and 0 < len(shortened["rows"]) < 5_000
        assert shortened["idempotency_key"] == big["idempotency_key"] and shortened["run_url"] == big["run_url"]

    def test_a_retried_part_measures_no_more_than_it_did(self) -> None:
        """A part with some messages dropped (claimed elsewhere) keeps its number and fits still."""
        messages = [{"text": "z" * 40} for _ in range(300)]
        parts = split_parts(messages, self.measure, {"chars": 1_500})
        kept = parts[1].only(parts[1].positions[::2])
        assert (kept.number, kept.total) == (2, len(parts)) and len(kept.messages) == len(parts[1].messages[::2])
        assert self.measure(kept)["chars"] <= 1_500

    def test_no_messages_make_no_parts(self) -> None:
        """Nothing to send: no part at all."""
        assert split_parts([], self.measure, {"chars": 10}) == []


def test_reports_name_the_part_they_were_sent_in(store: StateStore, receiver: Receiver) -> None:
    """A report of a group sent in parts says `part n of total` in its description and data; a group sent as one
    message does not."""
    whole = deliver(store, MSTeamsNotifier(receiver.url), "1:msteams", STORM[:3])
    assert all(r.part == "" and "part" not in r.as_dict() for rs in whole.values() for r in rs)
    split = deliver(store, MSTeamsNotifier(receiver.url), "1:msteams", STORM[3:])
    last = split[STORM[-1]][0]
    assert re.search(r"in one message for \d+ notifications \(part (\d+) of \1\)", last.describe())
    assert last.as_dict()["part"] == last.part


@pytest.mark.parametrize(("length", "button"), [(200, True), (4_000, False)], ids=["short_link", "long_link"])
def test_a_run_link_longer_than_slack_takes_leaves_the_button_out(length: int, button: bool) -> None:
    """A run link over Slack's 3,000 characters (a watched check's long asset path) drops the button, so the
    message is not refused; a short one keeps it."""
    url = "http://dagster.local/runs/" + "x" * (length - 26)
    message = {"alert_name": "a", "status": "ALERT", "event": "firing", "severity": "error", "run_url": url}
    blocks = slack_payload(message)["attachments"][0]["blocks"]
    assert any(block["type"] == "actions" for block in blocks) is button
