"""Keep webhook requests away from the server's own network (server-side request forgery).

A URL is checked twice: its shape when it is saved (`check_url`), and the address actually
connected to on every attempt (`GuardedTransport`). The second check matters: a name that
resolved to a public address yesterday may resolve to 127.0.0.1 today (DNS rebinding).

Feeds reuse the guard with two options webhooks leave off: an allow-list of private hosts and
networks (an ERP on the office network), and a per-operation timeout instead of one deadline for
the whole request (a 500 MB download takes minutes; what must be bounded is each connect and each
read). `vetted_addresses` gives the same answer to clients that connect by themselves (SFTP).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


class NameNotResolved(TargetRefused):
    """The host name has no address (DNS answered nothing, or could not be asked)."""


@dataclass(frozen=True)
class Allowed:
    """Hosts and networks that may be reached although their addresses are not public."""

    names: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> Allowed:
        """Host names, IP addresses or CIDR networks (`10.0.0.0/8`); ValueError otherwise."""
        names: set[str] = set()
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            name = _host_name(text)
            if not name or "/" in name or any(c.isspace() or c in "@:[]" for c in name):
                raise ValueError(f"{entry!r} is not a host name, an IP address or a network")
            names.add(name)
        return cls(frozenset(names), tuple(networks))

    def permits_name(self, host: str) -> bool:
        return _host_name(host) in self.names

    def permits(self, ip: IPAddress) -> bool:
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        # An address of the other IP version is simply not in the network (no error).
        return any(address in network for address in candidates for network in self.networks)


def _host_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _allowed(allowed: Allowed | Sequence[str]) -> Allowed:
    return allowed if isinstance(allowed, Allowed) else Allowed.parse(allowed)


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


def refused_reason(
    ip: IPAddress, *, allow_private: bool = False, allowed: Allowed | Sequence[str] = ()
) -> str | None:
    """Why the guard refuses to connect to an address already resolved, or None if it may."""
    if allow_private:
        return None
    reason = blocked_reason(ip)
    if reason is None or _allowed(allowed).permits(ip):
        return None
    return reason


def check_host(url: str, *, allowed: Allowed | Sequence[str] = ()) -> None:
    """Refuse hosts that are plainly local before anything is resolved (a quick, early answer)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    permitted = _allowed(allowed)
    if permitted.permits_name(host):
        return
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        raise TargetRefused(f"{host} is a loopback name")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    reason = refused_reason(ip, allowed=permitted)
    if reason:
        raise TargetRefused(f"{ip} is a {reason} address")


def vetted_addresses(
    host: str, port: int, *, allow_private: bool = False, allowed: Allowed | Sequence[str] = ()
) -> list[str]:
    """Resolve the host and keep the addresses the guard lets through, in the resolver's order.

    Connect to these addresses themselves, never to the name again: resolving twice would let
    a rebinding name pass the check with one address and be reached at another.
    """
    permitted = _allowed(allowed)
    name_allowed = permitted.permits_name(host)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise NameNotResolved(f"{host} does not resolve: {exc}") from None
    vetted: list[str] = []
    refused: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        reason = refused_reason(
            ipaddress.ip_address(address),
            allow_private=allow_private or name_allowed,
            allowed=permitted,
        )
        if reason:
            refused.append(f"{address} ({reason})")
        else:
            vetted.append(address)
    if not vetted:
        raise TargetRefused(
            f"{host} resolves only to addresses that are not public: {', '.join(refused)}"
        )
    return vetted


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
    """Resolves the host itself and connects only to an address that passes the guard.

    With a deadline, every connect, read and write shares it; without one (None), each is bounded
    by the timeout httpx passes for it (the client's connect, read and write timeouts).
    """

    def __init__(self, allow_private: bool, deadline: float | None, allowed: Allowed) -> None:
        self._allow_private = allow_private
        self._deadline = deadline
        self._allowed = allowed
        self._plain = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = vetted_addresses(
            host, port, allow_private=self._allow_private, allowed=self._allowed
        )
        last_error: Exception | None = None
        for address in addresses:
            connect_timeout = timeout
            if self._deadline is not None:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    raise httpcore.ConnectTimeout("the request took longer than the timeout")
                connect_timeout = remaining if timeout is None else min(timeout, remaining)
            try:
                # Connect to the vetted address itself, never to the name again (no re-resolve).
                stream = self._plain.connect_tcp(
                    address,
                    port,
                    timeout=connect_timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            if self._deadline is None:
                return stream
            return _DeadlineStream(stream, self._deadline)
        assert last_error is not None  # vetted_addresses never returns an empty list
        raise last_error

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
    """An httpx transport for one request: no proxies, one deadline, vetted peer addresses.

    `timeout=None` drops the overall deadline: the client's httpx.Timeout then bounds each
    connect and each read on its own. `allowed` names private hosts and networks let through.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float | None,
        allowed: Allowed | Sequence[str] = (),
    ) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        # httpx builds its connection pool in __init__ without a way to pass a network backend,
        # so the pool is rebuilt around ours (httpx is pinned; tests cover this).
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=1,
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(allow_private, deadline, _allowed(allowed)),
        )
