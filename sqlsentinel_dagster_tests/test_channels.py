"""Each channel against a real server on loopback: SMTP (aiosmtpd) and HTTP receivers for Slack, webhook,
PagerDuty and Teams. Exact payloads and headers, retries on 500/429 and none on 400."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlsentinel_dagster.config.targets import EmailTarget, WebhookTarget
from sqlsentinel_dagster.errors import SecretResolutionError
from sqlsentinel_dagster.notifiers import (
    DeliveryError,
    EmailNotifier,
    MSTeamsNotifier,
    PagerDutyNotifier,
    RetryPolicy,
    SlackNotifier,
    SmtpSettings,
    WebhookNotifier,
    send_with_retries,
)
from sqlsentinel_dagster.notifiers.registry import ChannelSettings, build_notifier

from .loopback import Receiver, loopback_receiver
from .smtp_server import smtp_server

MESSAGE: dict[str, Any] = {
    "alert_name": "orders_late",
    "status": "ALERT",
    "event": "firing",
    "reason": "firing: first notification",
    "actual_value": 7.5,
    "threshold": 5,
    "context": {"endpoint": "/orders"},
    "error": None,
    "description": "No orders in the last hour",
    "severity": "critical",
    "owners": ["team:sales"],
    "tags": {"domain": "sales"},
    "timestamp": "2026-01-01T12:00:00+00:00",
    "run_id": "run-1",
    "run_url": "http://dagster.local/runs/run-1",
    "idempotency_key": "orders_late/2/firing/0:webhook",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server on loopback that records requests."""
    with loopback_receiver() as server:
        yield server


class TestEmail:
    @pytest.mark.parametrize("mode", ["plain", "starttls", "ssl"])
    def test_email_arrives_with_recipients_subject_and_both_bodies(self, tmp_path: Path, mode: str) -> None:
        """Plain SMTP, STARTTLS with login, and implicit TLS all deliver one email to every recipient."""
        with smtp_server(tmp_path, mode) as box:
            settings = SmtpSettings(
                host=box.host,
                port=box.port,
                security={"plain": "none"}.get(mode, mode),  # type: ignore[arg-type]
                username="alerts" if mode == "starttls" else None,
                password="s3cret-pass" if mode == "starttls" else None,
                from_address="sentinel@example.com",
                ca_file=box.ca_file,
            )
            notifier = EmailNotifier(
                settings,
                ["oncall@example.com", "team@example.com"],
                subject_template="Critical: {alert_name} ({{ event }})",
            )
            notifier.send(MESSAGE)
        assert box.envelopes == [("sentinel@example.com", ["oncall@example.com", "team@example.com"])]
        email = box.messages[0]
        assert email["Subject"] == "Critical: orders_late (firing)"
        assert email["To"] == "oncall@example.com, team@example.com"
        assert email["X-SQLSentinel-Idempotency-Key"] == MESSAGE["idempotency_key"]
        text = email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = email.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert (
            "[FIRING] orders_late (critical)" in text
            and "value 7.5, threshold 5" in text
            and "endpoint: /orders" in text
        )
        assert 'href="http://dagster.local/runs/run-1"' in html
        assert box.logins == (["alerts"] if mode == "starttls" else [])

    def test_refused_recipient_is_permanent_and_4xx_is_retryable(self, tmp_path: Path) -> None:
        """SMTP 550 for an address is not retried; 451 is."""
        with smtp_server(tmp_path) as box:
            settings = SmtpSettings(host=box.host, port=box.port, security="none")
            with pytest.raises(DeliveryError) as refused:
                EmailNotifier(settings, ["refused@example.com"]).send(MESSAGE)
            with pytest.raises(DeliveryError) as later:
                EmailNotifier(settings, ["later@example.com"]).send(MESSAGE)
        assert not refused.value.retryable and "recipients refused: refused@example.com" in str(refused.value)
        assert later.value.retryable

    def test_wrong_password_is_permanent_and_not_shown(self, tmp_path: Path) -> None:
        """A 535 login failure is not retried and the password is not in the error."""
        with smtp_server(tmp_path, "starttls") as box:
            settings = SmtpSettings(
                host=box.host, port=box.port, username="alerts", password="Wrong-Pa55word", ca_file=box.ca_file
            )
            with pytest.raises(DeliveryError) as caught:
                EmailNotifier(settings, ["a@example.com"]).send(MESSAGE)
        assert not caught.value.retryable and "SMTP 535" in str(caught.value)
        assert "Wrong-Pa55word" not in str(caught.value)

    def test_untrusted_certificate_is_refused(self, tmp_path: Path) -> None:
        """Without the server's CA the STARTTLS handshake fails, and that is not retried."""
        with smtp_server(tmp_path, "starttls") as box:
            settings = SmtpSettings(host=box.host, port=box.port, username="alerts", password="x")
            with pytest.raises(DeliveryError, match="TLS certificate was refused") as caught:
                EmailNotifier(settings, ["a@example.com"]).send(MESSAGE)
        assert not caught.value.retryable


class TestWebhook:
    def test_default_body_headers_auth_and_idempotency_key(self, receiver: Receiver) -> None:
        """The JSON body has the documented fields; headers, bearer auth and the Idempotency-Key are sent."""
        WebhookNotifier(
            f"{receiver.url}/hook", method="PUT", headers={"X-Team": "orders"}, bearer_token="tok-123"
        ).send(MESSAGE)
        [request] = receiver.requests
        assert (request.method, request.path) == ("PUT", "/hook")
        assert request.headers["Idempotency-Key"] == MESSAGE["idempotency_key"]
        assert request.headers["Authorization"] == "Bearer tok-123" and request.headers["X-Team"] == "orders"
        assert request.headers["Content-Type"] == "application/json"
        assert request.body == MESSAGE

    def test_basic_auth_and_body_template(self, receiver: Receiver) -> None:
        """Basic auth is sent, and a body template replaces the default JSON."""
        WebhookNotifier(
            receiver.url, basic_auth=("alerts", "pw"), body_template='{"text": "{{ alert_name }} is {{ event }}"}'
        ).send(MESSAGE)
        [request] = receiver.requests
        assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"alerts:pw").decode()
        assert request.body == {"text": "orders_late is firing"}

    def test_sql_sentinel_placeholders_render_like_str_format(self, receiver: Receiver) -> None:
        """A legacy JSON body with {placeholders}, one right before the closing brace and one with a format spec,
        is sent rendered, never as literal text."""
        body = '{"alert": "{alert_name}", "shown": "{actual_value:.1f}", "value": {actual_value}}'
        WebhookNotifier(receiver.url, body_template=body).send(MESSAGE)
        [request] = receiver.requests
        value = MESSAGE["actual_value"]
        assert request.body == {"alert": MESSAGE["alert_name"], "shown": f"{value:.1f}", "value": value}


class TestSlack:
    def test_incoming_webhook_block_kit_coloured_by_event_with_run_button(self, receiver: Receiver) -> None:
        """The message has a fallback text, an attachment coloured for firing, fields and a button to the run."""
        SlackNotifier(webhook_url=receiver.url, username="SQL Sentinel").send(MESSAGE)
        body = receiver.requests[0].body
        attachment = body["attachments"][0]
        assert body["username"] == "SQL Sentinel" and body["text"].startswith("[FIRING] orders_late (critical)")
        assert attachment["color"] == "#E01E5A"
        fields = [f["text"] for f in attachment["blocks"][1]["fields"]]
        assert fields == ["*Status*\nALERT", "*Severity*\ncritical", "*Value*\n7.5", "*Threshold*\n5"]
        button = attachment["blocks"][-1]["elements"][0]
        assert button["url"] == "http://dagster.local/runs/run-1"

    def test_bot_token_posts_and_replies_in_the_thread(self, receiver: Receiver) -> None:
        """With a bot token the firing message starts a thread; the resolved notice replies in it."""
        receiver.reply = {"ok": True, "ts": "1700000000.000100"}
        slack = SlackNotifier(bot_token="xoxb-secret", slack_channel="#alerts", api_url=receiver.url)
        receipt = slack.send(MESSAGE)
        slack.send({**MESSAGE, "event": "resolved", "receipt": receipt})
        first, second = receiver.requests
        assert first.path == "/chat.postMessage" and first.headers["Authorization"] == "Bearer xoxb-secret"
        assert first.body["channel"] == "#alerts" and "thread_ts" not in first.body
        assert second.body["thread_ts"] == "1700000000.000100"
        assert second.body["attachments"][0]["color"] == "#2EB67D"

    def test_slack_api_error_is_reported(self, receiver: Receiver) -> None:
        """An ok=false answer is a failure naming Slack's error."""
        receiver.reply = {"ok": False, "error": "channel_not_found"}
        with pytest.raises(DeliveryError, match="Slack API error: channel_not_found") as caught:
            SlackNotifier(bot_token="xoxb-1", slack_channel="#nope", api_url=receiver.url).send(MESSAGE)
        assert not caught.value.retryable


class TestPagerDutyAndTeams:
    def test_pagerduty_triggers_and_resolves_one_incident_per_alert(self, receiver: Receiver) -> None:
        """Firing triggers and resolved resolves, with the same dedup_key and the routing key."""
        pagerduty = PagerDutyNotifier("R0UTING", events_url=f"{receiver.url}/v2/enqueue")
        pagerduty.send(MESSAGE)
        pagerduty.send({**MESSAGE, "event": "resolved"})
        trigger, resolve = (r.body for r in receiver.requests)
        assert trigger["routing_key"] == "R0UTING" and trigger["event_action"] == "trigger"
        assert trigger["dedup_key"] == resolve["dedup_key"] == "sqlsentinel/orders_late"
        assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "sqlsentinel-dagster"
        assert trigger["links"] == [{"href": "http://dagster.local/runs/run-1", "text": "Dagster run"}]
        assert resolve["event_action"] == "resolve" and "payload" not in resolve

    def test_teams_card(self, receiver: Receiver) -> None:
        """Teams gets an Adaptive Card with the headline, facts and a button to the run."""
        MSTeamsNotifier(receiver.url).send(MESSAGE)
        card = receiver.requests[0].body["attachments"][0]["content"]
        assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == "[FIRING] orders_late (critical)"
        facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
        assert facts["Value"] == "7.5" and facts["endpoint"] == "/orders"
        assert card["actions"][0]["url"] == "http://dagster.local/runs/run-1"


class TestRetries:
    def _send(self, receiver: Receiver, waits: list[float]) -> tuple[Any, int]:
        notifier = WebhookNotifier(receiver.url)
        policy = RetryPolicy(attempts=3, base_delay=1.0, max_delay=30.0)
        return send_with_retries(notifier, MESSAGE, policy, sleep=waits.append, jitter=lambda: 1.0)

    def test_500_is_retried_with_exponential_backoff(self, receiver: Receiver) -> None:
        """Two 500s then success: three requests, waits of 1 s and 2 s, the same idempotency key."""
        receiver.fail_with, receiver.fail_times = 500, 2
        waits: list[float] = []
        _, attempts = self._send(receiver, waits)
        assert attempts == 3 and waits == [1.0, 2.0]
        assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {MESSAGE["idempotency_key"]}

    def test_429_honours_retry_after(self, receiver: Receiver) -> None:
        """A 429 with Retry-After: 7 waits 7 seconds before the next try."""
        receiver.fail_with, receiver.fail_times, receiver.reply_headers = 429, 1, {"Retry-After": "7"}
        waits: list[float] = []
        self._send(receiver, waits)
        assert waits == [7.0] and len(receiver.requests) == 2

    def test_400_is_not_retried(self, receiver: Receiver) -> None:
        """A 400 fails at once: one request, no wait, not retryable."""
        receiver.fail_with = 400
        waits: list[float] = []
        with pytest.raises(DeliveryError) as caught:
            self._send(receiver, waits)
        assert len(receiver.requests) == 1 and waits == [] and not caught.value.retryable
        assert str(caught.value).startswith("webhook: HTTP 400 Bad Request")

    def test_retries_are_bounded(self, receiver: Receiver) -> None:
        """A server that keeps answering 503 gets exactly `attempts` requests; the error says how many."""
        receiver.fail_with = 503
        with pytest.raises(DeliveryError) as caught:
            self._send(receiver, [])
        assert len(receiver.requests) == 3 and caught.value.attempts == 3 and caught.value.retryable


def test_unreachable_endpoint_is_retryable_and_url_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """A refused connection is retryable and the error does not contain the URL (which may hold a token)."""
    caplog.set_level(logging.DEBUG)
    url = "http://127.0.0.1:9/hooks/T0KEN-in-path"
    with pytest.raises(DeliveryError) as caught:
        WebhookNotifier(url, timeout=2).send(MESSAGE)
    assert caught.value.retryable and "T0KEN-in-path" not in str(caught.value)
    assert "ConnectionError" in str(caught.value)


def test_a_template_failing_on_real_data_fails_only_that_channel(receiver: Receiver) -> None:
    """A body template that breaks on this evaluation's values is a permanent failure of that channel, not a crash."""
    notifier = WebhookNotifier(receiver.url, body_template="{{ actual_value / context.zero }}")
    with pytest.raises(DeliveryError) as caught:
        send_with_retries(notifier, {**MESSAGE, "context": {"zero": 0}}, RetryPolicy(attempts=3))
    assert not caught.value.retryable and caught.value.attempts == 1 and receiver.requests == []
    assert (
        str(caught.value) == "webhook: could not build or send the message: ZeroDivisionError: float division by zero"
    )


class TestSqlSentinelDefaults:
    def test_webhook_without_url_uses_webhook_url_and_auth_header_from_the_environment(
        self, receiver: Receiver
    ) -> None:
        """A webhook entry with no url posts to WEBHOOK_URL with WEBHOOK_AUTH_HEADER as Authorization."""
        env = {"WEBHOOK_URL": receiver.url, "WEBHOOK_AUTH_HEADER": "Token token=abc"}
        notifier = build_notifier(
            WebhookTarget(channel="webhook"), ChannelSettings(environ=env), logging.getLogger("t"), "alert 'a'"
        )
        notifier.send(MESSAGE)
        [request] = receiver.requests
        assert request.headers["Authorization"] == "Token token=abc" and request.body == MESSAGE

    def test_webhook_without_url_or_variable_is_a_named_error(self) -> None:
        """No url and no WEBHOOK_URL: the error names the entry and the variable to set."""
        with pytest.raises(SecretResolutionError) as caught:
            build_notifier(
                WebhookTarget(channel="webhook"), ChannelSettings(environ={}), logging.getLogger("t"), "alert 'a'"
            )
        assert "WEBHOOK_URL" in str(caught.value) and "alert 'a'" in str(caught.value)

    def test_recipients_from_a_variable_may_list_several_addresses(self) -> None:
        """${ONCALL} holding 'a@x.com, b@y.com' sends to both; a value that is no address is a permanent error."""
        settings = ChannelSettings(
            smtp=SmtpSettings(host="127.0.0.1", port=25), environ={"ONCALL": "a@x.com, b@y.com", "BAD": "nobody"}
        )
        target = EmailTarget(channel="email", recipients=["${ONCALL}", "c@z.com"])
        notifier = build_notifier(target, settings, logging.getLogger("t"), "alert 'a'")
        assert notifier.recipients == ["a@x.com", "b@y.com", "c@z.com"]  # type: ignore[attr-defined]
        with pytest.raises(DeliveryError) as caught:
            build_notifier(EmailTarget(channel="email", recipients=["${BAD}"]), settings, logging.getLogger("t"), "x")
        assert not caught.value.retryable and "'nobody'" in str(caught.value)
