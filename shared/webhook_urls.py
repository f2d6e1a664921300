"""Which webhook URLs audiochat will call, and at which address.

A receiver's name is resolved once per attempt, every address it resolves to is checked, and the
request then goes to a checked address (with the name in `Host` and TLS SNI): a name that
resolves to a public address when checked and to 127.0.0.1 a moment later (DNS rebinding)
never makes audiochat connect to the second. Loopback, private, link-local, shared, reserved and
multicast addresses are refused unless the operator lists their network in
`AUDIOCHAT_WEBHOOKS__ALLOWED_NETWORKS`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (socket.getaddrinfo in production).
Resolver = Callable[[str, int], list[str]]


class WebhookUrlRefused(InvalidRequest):
    code = "webhook-url-refused"
    title = "audiochat does not call this webhook URL"


class WebhookUrlUnresolvable(InvalidRequest):
    code = "webhook-url-unresolvable"
    title = "The webhook URL's host name does not resolve"


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_webhook_url(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an acceptable URL: http(s), a host, no credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"the webhook URL is not valid: {exc}", field="webhook") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            "the webhook URL must be http:// or https:// with a host", field="webhook"
        )
    if parts.username is not None or parts.password is not None:
        # Job records show the URL: credentials in it would be shown too.
        raise InvalidRequest("the webhook URL may not contain credentials", field="webhook")
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default


def is_allowed(address: IPAddress, allowed_networks: Sequence[IPNetwork]) -> bool:
    """Public addresses always; any other only inside an allowed network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed_networks):
        return True
    return address.is_global and not address.is_multicast


def check_webhook_url(
    url: str, allowed_networks: Sequence[IPNetwork], resolve: Resolver = system_resolver
) -> WebhookTarget:
    """The URL and the address to call it at; WebhookUrlRefused if any address the name
    resolves to is not allowed, WebhookUrlUnresolvable if it resolves to none."""
    scheme, host, port = parse_webhook_url(url)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise WebhookUrlUnresolvable(f"{host} does not resolve: {exc}", field="webhook") from exc
    if not addresses:
        raise WebhookUrlUnresolvable(f"{host} does not resolve", field="webhook")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_allowed(address, allowed_networks):
            raise WebhookUrlRefused(
                f"{host} resolves to {address}, which is not a public address; an operator can "
                "allow its network with AUDIOCHAT_WEBHOOKS__ALLOWED_NETWORKS",
                field="webhook",
            )
    return WebhookTarget(url=url, scheme=scheme, host=host, port=port, address=addresses[0])
