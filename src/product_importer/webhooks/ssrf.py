"""Keep webhook requests away from the server's own network (server-side request forgery).

A URL is checked twice: its shape when it is saved (`check_url`), and the address actually
connected to on every attempt (`GuardedTransport`). The second check matters: a name that
resolved to a public address yesterday may resolve to 127.0.0.1 today (DNS rebinding).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from product_importer.webhooks.models import URL_MAX_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class TargetRefused(Exception):
    """The target may not be requested: its address is not public, or it does not resolve."""


def blocked_reason(ip: IPAddress) -> str | None:
    """Why an address may not be a webhook target, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked_reason(embedded)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:
        return "private"
    return None


def check_url(url: str) -> str:
    """The URL if a webhook may be sent to it; ValueError with the reason otherwise."""
    if len(url) > URL_MAX_LENGTH:
        raise ValueError(f"URL is longer than {URL_MAX_LENGTH} characters")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise ValueError("URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("URL must not contain credentials; receivers verify the signature")
    if not parts.hostname:
        raise ValueError("URL has no host")
    if port == 0:
        raise ValueError("URL port must be between 1 and 65535")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"URL is malformed: {exc}") from None
    return url


def check_host(url: str) -> None:
    """Refuse hosts that are plainly local before anything is resolved (a quick, early answer)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        raise TargetRefused(f"{host} is a loopback name")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    reason = blocked_reason(ip)
    if reason:
        raise TargetRefused(f"{ip} is a {reason} address")


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write stops at one deadline for the whole request."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def _remaining(self, timeout: float | None, error: type[Exception]) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise error("the request took longer than the timeout")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(
            ssl_context, server_hostname, self._remaining(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host itself and connects only to an address that passes the guard."""

    def __init__(self, allow_private: bool, deadline: float) -> None:
        self._allow_private = allow_private
        self._deadline = deadline
        self._plain = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(f"{host} does not resolve: {exc}") from None
        refused: list[str] = []
        last_error: Exception | None = None
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0]).split("%", 1)[0]
            reason = blocked_reason(ipaddress.ip_address(address))
            if reason and not self._allow_private:
                refused.append(f"{address} ({reason})")
                continue
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise httpcore.ConnectTimeout("the request took longer than the timeout")
            try:
                # Connect to the vetted address itself, never to the name again (no re-resolve).
                stream = self._plain.connect_tcp(
                    address,
                    port,
                    timeout=remaining if timeout is None else min(timeout, remaining),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        if last_error is not None:
            raise last_error
        raise TargetRefused(
            f"{host} resolves only to addresses that are not public: {', '.join(refused)}"
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise TargetRefused("unix sockets are not webhook targets")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~20 ms; one context, shared by every thread, is safe.
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport for one request: no proxies, one deadline, vetted peer addresses."""

    def __init__(self, *, allow_private: bool, timeout: float) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx builds its connection pool in __init__ without a way to pass a network backend,
        # so the pool is rebuilt around ours (httpx is pinned; tests cover this).
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=1,
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(allow_private, time.monotonic() + timeout),
        )
