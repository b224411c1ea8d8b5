"""Secrets that could escape through HTTP answers: an error body echoing a secret across the point where it is
cut, and a redirect that would re-send credentials to another origin. Real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.notifiers import DeliveryError, WebhookNotifier
from sqlsentinel_dagster.state.store import StateStore

from .loopback import Receiver, loopback_receiver

SECRET = "tok-" + "s3cr3t" * 5
MESSAGE = {"alert_name": "orders_late", "event": "firing", "idempotency_key": "k"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


class TestErrorBodies:
    @pytest.mark.parametrize("offset", [190, 195, 199, 200, 201])
    def test_a_secret_echoed_across_the_cut_leaves_no_prefix(self, receiver: Receiver, offset: int) -> None:
        """The server echoes the bearer token so that the 200-character cut falls inside it: nothing of the
        token appears in the error, which still shows the start of the answer."""
        receiver.fail_with, receiver.fail_body = 400, ("x" * offset + SECRET + "y" * 50).encode()
        with pytest.raises(DeliveryError) as caught:
            WebhookNotifier(receiver.url, bearer_token=SECRET).send(MESSAGE)
        text = str(caught.value)
        assert "HTTP 400" in text and "xxxx" in text
        assert not any(SECRET[:n] in text for n in range(4, len(SECRET) + 1))


class TestRedirects:
    def test_a_redirect_to_another_origin_is_not_followed_and_gets_no_credentials(self, receiver: Receiver) -> None:
        """A 307 to another server: the other server receives nothing (no token, no body); the error says why
        and is permanent."""
        with loopback_receiver() as elsewhere:
            receiver.fail_with, receiver.reply_headers = 307, {"Location": f"{elsewhere.url}/steal"}
            notifier = WebhookNotifier(receiver.url, headers={"X-Api-Key": "key-123456"}, bearer_token=SECRET)
            with pytest.raises(DeliveryError) as caught:
                notifier.send(MESSAGE)
            assert elsewhere.requests == []
        assert not caught.value.retryable
        assert "redirects are not followed" in str(caught.value) and SECRET not in str(caught.value)
        assert len(receiver.requests) == 1


PASSWORD = "p@ss:w/rd#1%"  # every character that splits a URL


def _alerts_with_url(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        f"""
databases: {{main: {{url: "{url}"}}}}
alerts:
  - {{name: probe, query: "SELECT 'ALERT' AS status", schedule: "@hourly"}}
"""
    )
    return path


class TestUrlsFromVariables:
    def test_a_password_with_url_characters_stays_a_password(
        self, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`${PGPASSWORD}` holding '@', ':', '/', '#' and '%' is escaped into the URL: the query reaches the
        local Postgres (trust auth) instead of a host named after a piece of the password."""
        parsed = sa.make_url(postgres_url)
        monkeypatch.setenv("SX_PW", PASSWORD)
        url = f"postgresql://{parsed.username}:${{SX_PW}}@{parsed.host}:{parsed.port}/{parsed.database}"
        path = _alerts_with_url(tmp_path, url)
        with dg.instance_for_test() as instance:
            result = build_definitions(path).resolve_job_def("sqlsentinel__probe").execute_in_process(instance=instance)
            assert result.success

    @pytest.mark.parametrize(
        "value", ["postgresql://u:pw@127.0.0.1:notaport/db", "no-scheme-at-all"], ids=["bad-port", "not-a-url"]
    )
    def test_a_malformed_url_from_a_variable_is_a_recorded_error_without_the_url(
        self, tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The run records the alert as ERROR with a named cause; no piece of the URL is shown."""
        monkeypatch.setenv("SX_URL", value)
        path = _alerts_with_url(tmp_path, "${SX_URL}")
        with dg.instance_for_test() as instance:
            job = build_definitions(path).resolve_job_def("sqlsentinel__probe")
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            assert not result.success
            (history,) = (
                StateStore.from_url(instance_state_url(instance))
                .engine.connect()
                .execute(sa.text("SELECT status, error FROM sqlsentinel_history"))
            )
        status, error = history
        assert status == "ERROR" and "database 'main' failed" in error
        assert "pw@" not in error and "notaport" not in error and "no-scheme" not in error
