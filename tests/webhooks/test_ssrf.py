"""The SSRF guard: URL shape on save, and the address actually connected to on every attempt."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from fastapi.testclient import TestClient

from product_importer.webhooks import delivery, ssrf
from tests.webhooks.receiver import Receiver


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata service
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "reserved"),  # noqa: S104
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("192.0.2.1", "private"),  # documentation range
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str, reason: str) -> None:
    assert ssrf.blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert ssrf.blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://user@example.com/hook", "credentials"),
        ("https:///hook", "no host"),
        ("https://example.com:0/hook", "port"),
        ("https://example.com:99999/hook", "malformed"),
        ("https://[::1/hook", "malformed"),
        ("https://exa mple.com/hook", "spaces"),
        ("https://example.com/\r\nX-Injected: 1", "control characters"),
        ("https://example.com/" + "a" * 2000, "longer than 2000"),
    ],
)
def test_malformed_or_unsafe_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ssrf.check_url(url)


def test_good_urls_pass() -> None:
    for url in (
        "https://example.com/hook?x=1",
        "http://[2606:4700::1]:8080/",
        "https://bücher.de/",
    ):
        assert ssrf.check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/hook",
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
    ],
)
def test_the_api_refuses_local_targets_by_default(
    client: TestClient, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client.app.state, "settings", _strict(client))  # type: ignore[attr-defined]
    response = client.post("/api/webhooks", json={"url": url, "events": ["product.created"]})
    assert response.status_code == 422, response.text
    assert "PRODUCT_IMPORTER_WEBHOOK_ALLOW_PRIVATE" in response.json()["detail"]


def _strict(client: TestClient) -> Any:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    return settings.model_copy(update={"webhook_allow_private": False})


def _send(url: str, allow_private: bool) -> delivery.Outcome:
    return delivery.send(
        url, ["whsec_" + "A" * 43 + "="], "msg_t", b"{}", timeout=2, allow_private=allow_private
    )


def test_a_loopback_receiver_is_never_contacted_by_default(receiver: Receiver) -> None:
    outcome = _send(receiver.url, allow_private=False)
    assert not outcome.ok
    assert outcome.status_code is None
    assert outcome.error is not None
    assert "Refused" in outcome.error and "127.0.0.1 (loopback)" in outcome.error
    assert receiver.received == []


def test_a_name_is_checked_by_the_address_it_resolves_to_at_each_attempt(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a public-looking name that resolves to loopback at send time is refused;
    when allowed, we connect to the vetted address and keep the name in the Host header."""
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.example.com":
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://hooks.example.com:{receiver.port}/hook"
    ssrf.check_url(url)  # nothing wrong with its shape
    refused = _send(url, allow_private=False)
    assert refused.error is not None and "127.0.0.1 (loopback)" in refused.error
    assert receiver.received == []

    allowed = _send(url, allow_private=True)
    assert allowed.ok, allowed.error
    assert receiver.received[0].headers["host"] == f"hooks.example.com:{receiver.port}"


def test_a_name_that_does_not_resolve_is_a_clear_error() -> None:
    outcome = _send("http://no-such-host.invalid/hook", allow_private=False)
    assert not outcome.ok
    assert outcome.error is not None and "does not resolve" in outcome.error
