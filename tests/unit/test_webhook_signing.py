"""Signatures and retry pauses of webhook deliveries, checked against the Standard Webhooks
library (an implementation that is not ours)."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.config import WebhookSettings
from shared.webhook_secrets import new_secret, sign
from webhooks.delivery import backoff


def _headers(signature: str, timestamp: int, message_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_each_secret_in_force_signs_and_the_library_accepts_either() -> None:
    current, previous, other = new_secret(), new_secret(), new_secret()
    assert current.startswith("whsec_") and current != previous
    body = b'{"type":"done","data":{"text":"caf\xc3\xa9"}}'
    now = int(time.time())
    signature = sign([current, previous], "msg_1", now, body)
    assert signature.count("v1,") == 2
    for secret in (current, previous):
        assert Webhook(secret).verify(body, _headers(signature, now))["type"] == "done"
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, _headers(signature, now))
    with pytest.raises(WebhookVerificationError):
        Webhook(current).verify(body, _headers(signature, now, "msg_2"))
    stale = now - 600
    with pytest.raises(WebhookVerificationError):
        Webhook(current).verify(body, _headers(sign([current], "msg_1", stale, body), stale))


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() -> None:
    settings = WebhookSettings(backoff_seconds=2, max_backoff_seconds=30)
    for attempts, full in ((1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)):
        delays = [backoff(settings, attempts, None) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), (attempts, min(delays), max(delays))
        assert len(set(delays)) > 100  # jittered, not one fixed pause
    assert backoff(settings, 1, 12.0) == 12.0
    assert backoff(settings, 1, 3600.0) == 30
