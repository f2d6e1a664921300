"""API keys, tenants, and the short-lived tokens that open one job's events in a browser.

A key is a random token; the gateway keeps only its SHA-256 (a fast hash is enough for keys
with 256 bits of entropy: there is nothing to brute-force). Each key belongs to a tenant, and
every job, upload and event stream belongs to the tenant that created it; another tenant gets
404, not 403, so it cannot even learn that an id exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from typing import Annotated

from fastapi import Depends, Request

from api.limits import check_rate
from shared.config import Settings
from shared.errors import ServiceError
from shared.jobs import DEFAULT_TENANT

logger = logging.getLogger(__name__)

# Paths anyone may read: probes, metrics, the web page and its files, the API description.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/", "/openapi.json", "/docs"})
PUBLIC_PREFIXES = ("/static/", "/docs/")


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"
    title = "A valid API key is required"


def hash_api_key(key: str) -> str:
    """What the gateway stores for a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "ac_" + secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen_address(host: str, settings: Settings) -> None:
    """Refuse to serve beyond loopback without API keys."""
    if not is_loopback(host) and not settings.auth_enabled:
        raise SystemExit(
            f"refusing to listen on {host}: set AUDIOCHAT_API_KEYS before serving beyond "
            "loopback (see docs/operations.md)"
        )


class Authenticator:
    """Maps API keys to tenants and signs job-scoped event tokens."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth_enabled
        self._tenants = {digest.lower(): tenant for digest, tenant in settings.api_keys.items()}
        secret = settings.token_secret.get_secret_value() if settings.token_secret else None
        if secret is None and self.enabled:
            logger.warning(
                "AUDIOCHAT_TOKEN_SECRET is not set: event tokens are valid on this process only"
            )
        self._secret = (secret or secrets.token_hex(32)).encode()
        self._token_ttl = settings.events_token_ttl_seconds

    def tenant_for_key(self, key: str) -> str | None:
        return self._tenants.get(hash_api_key(key))

    def events_token(self, job_id: str, tenant: str) -> str:
        """A token that opens this job's events, and nothing else, until it expires."""
        expires = int(time.time()) + self._token_ttl
        signature = self._sign(job_id, tenant, expires)
        raw = f"{expires}.{tenant}.{signature}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def tenant_for_token(self, token: str, job_id: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            # A tenant's name may hold dots; the expiry and the (hex) signature cannot.
            expires_text, rest = raw.split(".", 1)
            tenant, signature = rest.rsplit(".", 1)
            expires = int(expires_text)
        except ValueError:
            return None
        if expires < time.time():
            return None
        if not hmac.compare_digest(signature, self._sign(job_id, tenant, expires)):
            return None
        return tenant

    def _sign(self, job_id: str, tenant: str, expires: int) -> str:
        message = f"{job_id}\n{tenant}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


async def authenticate(request: Request) -> str:
    """The tenant of this request (an app-wide dependency: every route is covered)."""
    authenticator: Authenticator = request.app.state.authenticator
    path = request.url.path
    if not authenticator.enabled or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        tenant = DEFAULT_TENANT
    else:
        tenant = _tenant_from_credentials(request, authenticator)
        if request.method == "POST":
            # Requests that create work count against the key's per-minute budget.
            services = request.app.state.services
            await check_rate(services.aioredis, tenant, services.settings.rate_limit_per_minute)
    request.state.tenant = tenant
    return tenant


def _tenant_from_credentials(request: Request, authenticator: Authenticator) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key:
        tenant = authenticator.tenant_for_key(key.strip())
        if tenant is not None:
            return tenant
    # EventSource cannot send headers: a job's events also open with its own token.
    token = request.query_params.get("token")
    job_id = request.path_params.get("job_id")
    if token and job_id and request.url.path.endswith("/events"):
        tenant = authenticator.tenant_for_token(token, job_id)
        if tenant is not None:
            return tenant
    raise Unauthorized("send `Authorization: Bearer <API key>`")


TenantDep = Annotated[str, Depends(authenticate)]
