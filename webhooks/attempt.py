"""One attempt at POSTing a webhook: check the address, connect to it, read the status line.

The request goes to the address that was checked (`shared/webhook_urls.py`), with the URL's
host in `Host` and in TLS SNI, so certificates are still verified for the name. Redirects are
not followed (a 3xx is a failed attempt), proxies from the environment are not used, the whole
attempt is bounded by one deadline (a receiver that trickles its answer cannot hold a worker),
and the response body is never read: only the status and `Retry-After` matter.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from shared.webhook_urls import (
    IPNetwork,
    Resolver,
    WebhookTarget,
    WebhookUrlRefused,
    WebhookUrlUnresolvable,
    check_webhook_url,
    system_resolver,
)

Verdict = Literal["delivered", "retry", "give-up"]
# Answers worth another try: the receiver is busy or broken for now.
RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class AttemptResult:
    verdict: Verdict
    seconds: float
    status_code: int | None = None
    error: str | None = None
    # Seconds the receiver asked us to wait (`Retry-After` on a 429 or 503).
    retry_after: float | None = None


def verdict_for(status: int) -> Verdict:
    if 200 <= status < 300:
        return "delivered"
    if status in RETRY_STATUSES or status >= 500:
        return "retry"
    return "give-up"


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds, or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _post(
    target: WebhookTarget, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, str | None]:
    url = httpx.URL(target.url)
    # The name as it goes on the wire: IDNA-encoded, IPv6 in brackets, the port if not default.
    host_header = url.netloc.decode("ascii")
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    async with httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=timeout
    ) as client:
        request = client.build_request(
            "POST",
            url.copy_with(host=target.address),
            content=body,
            headers={**headers, "Host": host_header},
            extensions=extensions,
        )
        response = await client.send(request, stream=True)
        # Closed unread: a receiver's body, however large, is never downloaded.
        await response.aclose()
        return response.status_code, response.headers.get("retry-after")


def attempt(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allowed_networks: Sequence[IPNetwork],
    resolve: Resolver = system_resolver,
) -> AttemptResult:
    """POST `body` to `url` once and say whether it was delivered, is worth a retry, or never
    will be (a refused address, a redirect, a 4xx such as 410 Gone)."""
    started = time.monotonic()

    def elapsed() -> float:
        return round(time.monotonic() - started, 3)

    try:
        target = check_webhook_url(url, allowed_networks, resolve)
    except WebhookUrlRefused as exc:
        return AttemptResult("give-up", elapsed(), error=exc.message)
    except WebhookUrlUnresolvable as exc:
        return AttemptResult("retry", elapsed(), error=exc.message)
    try:
        status, retry_after = asyncio.run(
            asyncio.wait_for(_post(target, body, headers, timeout), timeout)
        )
    except (TimeoutError, httpx.TimeoutException):
        return AttemptResult("retry", elapsed(), error=f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        return AttemptResult("retry", elapsed(), error=f"request failed: {reason}")
    verdict = verdict_for(status)
    error = None
    if 300 <= status < 400:
        error = f"answered {status}: redirects are not followed"
    elif verdict != "delivered":
        error = f"answered {status}"
    return AttemptResult(verdict, elapsed(), status, error, parse_retry_after(retry_after))
