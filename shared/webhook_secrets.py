"""Each tenant's webhook signing secret, and signatures as the Standard Webhooks spec has them.

A secret is `whsec_` and 32 random bytes in base64, the form the spec's libraries take. It is
made (or rotated) by the tenant through `POST /v1/webhooks/secret` and shown in that answer
only. Redis keeps it, since signing needs the secret itself. After a rotation, the previous
secret signs too until its grace period ends: a delivery then carries two signatures and a
receiver still holding the old secret keeps verifying.

The signature of a delivery is `v1,` and base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")),
one for each secret in force, separated by spaces (the `webhook-signature` header).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import redis
from pydantic import BaseModel

from shared.errors import Conflict
from shared.redis_keys import webhook_secret_key

SECRET_PREFIX = "whsec_"

# Make a new secret current; the old one, if any, stays valid until ARGV[3].
# ARGV: the new secret, now, when the old one stops signing.
_ROTATE_SCRIPT = """
local old = redis.call('HGET', KEYS[1], 'current')
if old then
  redis.call('HSET', KEYS[1], 'previous', old, 'previous_expires_at', ARGV[3])
end
redis.call('HSET', KEYS[1], 'current', ARGV[1], 'created_at', ARGV[2])
return old and 1 or 0
"""


class WebhookSecretMissing(Conflict):
    code = "webhook-secret-missing"
    title = "Make a webhook secret first (POST /v1/webhooks/secret)"


class WebhookSecretInfo(BaseModel):
    """A tenant's secret as the API shows it: the secret itself only when it is made."""

    secret: str | None = None
    created_at: float
    # While the previous secret still signs deliveries (after a rotation).
    previous_expires_at: float | None = None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret_values: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,<base64>` signature per secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key_bytes(s), signed, hashlib.sha256).digest()).decode()
        for s in secret_values
    )


class WebhookSecrets:
    """Makes, rotates and reads tenants' secrets."""

    def __init__(self, client: redis.Redis, rotation_grace_seconds: int) -> None:
        self._redis = client
        self._grace = rotation_grace_seconds
        self._rotate = client.register_script(_ROTATE_SCRIPT)

    def rotate(self, tenant: str) -> WebhookSecretInfo:
        """Make a new secret for `tenant` (the first, or in place of the current one)."""
        secret = new_secret()
        now = time.time()
        expires = now + self._grace
        rotated = self._rotate(keys=[webhook_secret_key(tenant)], args=[secret, now, expires])
        return WebhookSecretInfo(
            secret=secret, created_at=now, previous_expires_at=expires if rotated else None
        )

    def info(self, tenant: str) -> WebhookSecretInfo | None:
        """When the tenant's secret was made; never the secret itself."""
        fields = self._fields(tenant)
        if "current" not in fields:
            return None
        previous = float(fields["previous_expires_at"]) if "previous_expires_at" in fields else None
        return WebhookSecretInfo(
            created_at=float(fields["created_at"]),
            previous_expires_at=previous if previous and previous > time.time() else None,
        )

    def exists(self, tenant: str) -> bool:
        return bool(self._redis.hexists(webhook_secret_key(tenant), "current"))

    def signing_secrets(self, tenant: str) -> list[str]:
        """The secrets that sign a delivery now: the current one, then the previous one while
        its grace period lasts. WebhookSecretMissing if the tenant has none."""
        fields = self._fields(tenant)
        if "current" not in fields:
            raise WebhookSecretMissing(f"tenant {tenant!r} has no webhook secret")
        values = [fields["current"]]
        if "previous" in fields and float(fields.get("previous_expires_at", 0)) > time.time():
            values.append(fields["previous"])
        return values

    def _fields(self, tenant: str) -> dict[str, str]:
        raw: Any = self._redis.hgetall(webhook_secret_key(tenant))
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
