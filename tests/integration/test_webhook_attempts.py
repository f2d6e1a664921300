"""One webhook attempt against a real receiver on loopback: hostile addresses, redirects, huge
and missing answers. The resolver is the one thing replaced, to play DNS for names that must
resolve to chosen addresses (a private one, or a public one and then loopback)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pytest

from shared.webhook_urls import (
    IPNetwork,
    Resolver,
    WebhookUrlRefused,
    WebhookUrlUnresolvable,
    check_webhook_url,
    system_resolver,
)
from tests.support.receivers import Receiver
from webhooks.attempt import AttemptResult, attempt, parse_retry_after

LOOPBACK: list[IPNetwork] = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def _send(
    url: str, *, allowed: list[IPNetwork] = LOOPBACK, resolve: Resolver = system_resolver
) -> AttemptResult:
    return attempt(
        url, b"{}", {"webhook-id": "msg_x"}, timeout=2, allowed_networks=allowed, resolve=resolve
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_non_public_addresses_are_refused_without_an_allowed_network(url: str) -> None:
    with pytest.raises(WebhookUrlRefused) as caught:
        check_webhook_url(url, [])
    assert caught.value.code == "webhook-url-refused" and caught.value.field == "webhook"


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    def private(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    with pytest.raises(WebhookUrlRefused, match=r"10\.0\.0\.7"):
        check_webhook_url("https://hooks.example.com/in", [], private)

    def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    # One bad address among good ones is enough: the connection could go to any of them.
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("https://hooks.example.com/in", [], mixed)
    public = check_webhook_url(
        "https://hooks.example.com:8443/in", [], lambda h, p: ["93.184.216.34"]
    )
    assert (public.host, public.port, public.address) == (
        "hooks.example.com",
        8443,
        "93.184.216.34",
    )


def test_an_allowed_network_lets_only_its_own_addresses_in() -> None:
    allowed: list[IPNetwork] = [ipaddress.ip_network("10.0.0.0/8")]
    assert check_webhook_url("http://10.9.8.7/x", allowed).address == "10.9.8.7"
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("http://127.0.0.1/x", allowed)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http:///x",
        "http://user:pw@example.com/x",
        "http://example.com:99999/x",
    ],
)
def test_urls_that_are_not_http_receivers_are_invalid(url: str) -> None:
    with pytest.raises(Exception) as caught:
        check_webhook_url(url, [])
    assert getattr(caught.value, "code", None) == "invalid-request"


def test_a_name_that_does_not_resolve_is_unresolvable() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(WebhookUrlUnresolvable):
        check_webhook_url("http://nowhere.example/x", [], nowhere)


def test_the_request_goes_to_the_checked_address_with_the_name_as_host(receiver: Receiver) -> None:
    # `receiver.test` resolves nowhere but through this resolver: the request can only have
    # reached the receiver at the address the check returned.
    result = _send(
        f"http://receiver.test:{receiver.port}/ok/pinned",
        resolve=lambda host, port: ["127.0.0.1"],
    )
    assert result.verdict == "delivered" and result.status_code == 202
    (request,) = receiver.wait_for("/ok/pinned")
    assert request.headers["Host"] == f"receiver.test:{receiver.port}"


def test_dns_rebinding_to_loopback_is_refused_at_the_attempt(receiver: Receiver) -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    url = f"http://rebind.test:{receiver.port}/ok/rebound"
    check_webhook_url(url, [], rebinding)  # what the gateway saw when the job was made
    result = _send(url, allowed=[], resolve=rebinding)
    assert result.verdict == "give-up" and "127.0.0.1" in (result.error or "")
    assert receiver.received("/ok/rebound") == []


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    result = _send(receiver.url("/redirect/1"))
    assert result.verdict == "give-up" and result.status_code == 302
    assert "redirect" in (result.error or "")
    assert receiver.received("/ok/redirected") == []


def test_a_huge_answer_is_not_read(receiver: Receiver) -> None:
    started = time.monotonic()
    result = _send(receiver.url("/huge/1"))
    assert result.verdict == "delivered" and result.status_code == 200
    assert time.monotonic() - started < 2


def test_a_receiver_that_hangs_times_out_as_retryable(receiver: Receiver) -> None:
    started = time.monotonic()
    result = attempt(
        receiver.url("/hang/attempt"), b"{}", {}, timeout=0.5, allowed_networks=LOOPBACK
    )
    assert result.verdict == "retry" and result.status_code is None
    assert "0.5 s" in (result.error or "")
    assert 0.4 < time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("path", "verdict"), [("/gone/1", "give-up"), ("/busy/1", "retry"), ("/flaky-1/a", "retry")]
)
def test_answers_decide_whether_to_retry(receiver: Receiver, path: str, verdict: str) -> None:
    assert _send(receiver.url(path)).verdict == verdict


def test_a_closed_port_is_retryable() -> None:
    from testbed.processes import free_port

    result = _send(f"http://127.0.0.1:{free_port()}/x")
    assert result.verdict == "retry" and "request failed" in (result.error or "")


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_an_international_name_goes_out_idna_encoded(receiver: Receiver) -> None:
    result = _send(
        f"http://bücher.test:{receiver.port}/ok/idna", resolve=lambda host, port: ["127.0.0.1"]
    )
    assert result.verdict == "delivered"
    (request,) = receiver.wait_for("/ok/idna")
    assert request.headers["Host"] == f"xn--bcher-kva.test:{receiver.port}"
