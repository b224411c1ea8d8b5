"""Secrets that could escape through HTTP answers: an error body echoing a secret across the point where it is
cut, and a redirect that would re-send credentials to another origin. Real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqlsentinel_dagster.notifiers import DeliveryError, WebhookNotifier

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
