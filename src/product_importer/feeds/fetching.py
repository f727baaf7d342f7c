"""Download a feed's file from an HTTP(S) URL or an SFTP server into a writable binary sink.

Every failure is a `FetchFailed` whose text a merchant can act on: it names the host and the HTTP
status, never a password, a header value or the URL's query (which often carries a token). The
address actually connected to goes through the webhooks' SSRF guard on every attempt and every
redirect hop, so a feed cannot be pointed at the server's own network unless the operator allowed
that host or network. Connect time and each single read are bounded, not the whole download.
"""

from __future__ import annotations

import email.utils
import hashlib
import posixpath
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import SplitResult, unquote, urlsplit

import httpx

from product_importer import __version__
from product_importer.feeds import sftp
from product_importer.feeds.sftp import fingerprint as fingerprint  # part of this API
from product_importer.webhooks import ssrf

URL_MAX_LENGTH = 2000
SCHEMES = ("https", "http", "sftp")
MAX_REDIRECTS = 5
USER_AGENT = f"ProductImporter-Feeds/{__version__}"


@dataclass(frozen=True)
class Source:
    url: str
    # Secrets stay out of repr(), so a logged Source shows none of them.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    host_key: str | None = None


@dataclass(frozen=True)
class Known:
    """What the feed's last successful import saw."""

    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    allow_private: bool = False
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fetched:
    unchanged: bool
    filename: str
    size: int
    sha256: str | None
    etag: str | None
    last_modified: str | None
    http_status: int | None
    host_key: str | None
    truncated_at_head: bool = False


class FetchFailed(Exception):
    """The file could not be fetched; str() is the reason, in words a merchant understands."""

    def __init__(
        self, reason: str, *, http_status: int | None = None, host_key: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status
        self.host_key = host_key


class HostKeyUnknown(FetchFailed):
    """No fingerprint was pinned yet; `host_key` is the one to show the user to confirm."""


class HostKeyChanged(FetchFailed):
    """The server presented another key than the pinned one."""


def check_source_url(url: str) -> str:
    """The URL if its shape is acceptable for a feed; ValueError with the reason otherwise."""
    if len(url) > URL_MAX_LENGTH:
        raise ValueError(f"URL is longer than {URL_MAX_LENGTH} characters")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise ValueError("URL contains spaces or control characters")
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in SCHEMES or not rest.startswith("//"):
        given = f"{scheme}: URLs are not supported; " if colon and scheme.isalnum() else ""
        raise ValueError(f"{given}a feed URL must start with https://, http:// or sftp://")
    if scheme == "sftp":
        _sftp_target(url)
        return url
    parts = _split(url)
    if parts.password is not None:
        raise ValueError("URL must not contain a password: give it in the password field")
    if parts.username is not None or "@" in parts.netloc:
        raise ValueError(
            "URL must not contain a user name: give it in the user name and password fields"
        )
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"URL is malformed: {exc}") from None
    return url


def check_source_host(url: str, limits: Limits) -> None:
    """Refuse plainly local hosts (loopback names, private IP literals) before anything resolves.

    Raises ValueError, not FetchFailed, so that saving such a feed is answered like any other
    invalid field (422). Names are vetted by the addresses they resolve to at each fetch.
    """
    if limits.allow_private:
        return
    try:
        ssrf.check_host(url, allowed=limits.allowed)
    except ssrf.TargetRefused as exc:
        raise ValueError(
            f"feeds may not fetch from {exc}: only public addresses, unless the host or its "
            "network is allowed"
        ) from None


def fetch(
    source: Source,
    known: Known,
    limits: Limits,
    sink: BinaryIO,
    *,
    head_bytes: int | None = None,
) -> Fetched:
    """Stream the file into sink; `head_bytes` stops after that many bytes (a preview)."""
    try:
        check_source_url(source.url)
        check_source_host(source.url, limits)
    except ValueError as exc:
        raise FetchFailed(str(exc)) from None
    counter = _Counter(sink, limits.max_bytes, head_bytes)
    if source.url.lower().startswith("sftp:"):
        return _fetch_sftp(source, known, limits, counter)
    return _fetch_http(source, known, limits, counter)


class _Counter:
    """Writes to the sink while counting, hashing and holding the size limit."""

    def __init__(self, sink: BinaryIO, max_bytes: int, head_bytes: int | None) -> None:
        self.size = 0
        self.truncated = False
        self._sink = sink
        self._max = max_bytes
        self._head = head_bytes
        self._hash = hashlib.sha256()
        # One byte past what is kept tells "exactly the limit" from "more than the limit".
        self.reads_at_most = min(max_bytes, max_bytes if head_bytes is None else head_bytes) + 1

    def expect(self, size: int | None) -> None:
        if size is not None and size > self._max:
            raise FetchFailed(
                f"the file is {_amount(size)}, larger than the limit of {_amount(self._max)}"
            )

    def write(self, chunk: bytes) -> bool:
        """Keep the chunk; False once the preview has all it wanted."""
        if self._head is not None and self.size + len(chunk) > self._head:
            chunk = chunk[: self._head - self.size]
            self.truncated = True
        if self.size + len(chunk) > self._max:
            raise FetchFailed(f"the file is larger than the limit of {_amount(self._max)}")
        try:
            self._sink.write(chunk)
        except OSError as exc:
            raise FetchFailed(f"the downloaded file could not be stored: {exc}") from None
        self._hash.update(chunk)
        self.size += len(chunk)
        return not self.truncated

    def sha256(self) -> str | None:
        return None if self.truncated else self._hash.hexdigest()

    def unchanged(self, known: Known) -> bool:
        digest = self.sha256()
        return digest is not None and digest == (known.sha256 or "").lower()


def _amount(size: int) -> str:
    if size < 2**20:
        return f"{size:,} bytes"
    megabytes = size / 2**20
    return f"{round(megabytes):,} MB" if megabytes >= 10 else f"{megabytes:.2g} MB"


# SFTP -----------------------------------------------------------------------------------------


def _sftp_target(url: str) -> sftp.Target:
    """sftp://user@host[:port]/path. The path is taken whole: `?` and `#` are glob characters
    there, not a query or a fragment. `/~/x` is x in the user's home folder."""
    netloc, slash, path = url[len("sftp://") :].partition("/")
    parts = _split("//" + netloc)
    if parts.password is not None:
        raise ValueError("URL must not contain a password: give it in the password field")
    if not parts.username or not parts.hostname:
        raise ValueError("an sftp:// URL needs a user name: sftp://user@host/path/file.csv")
    if not slash or not path or path.endswith("/"):
        raise ValueError("an sftp:// URL needs the path of a file: sftp://user@host/path/file.csv")
    path = unquote(path)
    path = path[2:] if path.startswith("~/") else "/" + path
    return sftp.Target(unquote(parts.username), parts.hostname, parts.port or 22, path)


def _fetch_sftp(source: Source, known: Known, limits: Limits, counter: _Counter) -> Fetched:
    target = _sftp_target(source.url)
    try:
        remote = sftp.download(
            target,
            username=source.username or target.user,
            password=source.password,
            private_key=source.private_key,
            pinned=source.host_key,
            connect_timeout=limits.connect_timeout,
            read_timeout=limits.read_timeout,
            allow_private=limits.allow_private,
            allowed=limits.allowed,
            sink=counter,
        )
    except sftp.SftpError as exc:
        kind = {None: FetchFailed, "unknown": HostKeyUnknown, "changed": HostKeyChanged}
        raise kind[exc.key_problem](str(exc), host_key=exc.host_key) from None
    modified = None if remote.mtime is None else email.utils.formatdate(remote.mtime, usegmt=True)
    return Fetched(
        unchanged=counter.unchanged(known),
        filename=remote.filename,
        size=counter.size,
        sha256=counter.sha256(),
        etag=None,
        last_modified=modified,
        http_status=None,
        host_key=remote.host_key,
        truncated_at_head=counter.truncated,
    )


# HTTP -----------------------------------------------------------------------------------------


def _fetch_http(source: Source, known: Known, limits: Limits, counter: _Counter) -> Fetched:
    url = httpx.URL(source.url)
    origin = _origin(url)
    auth = None
    if source.username is not None or source.password is not None:
        auth = httpx.BasicAuth(source.username or "", source.password or "")
    conditional: dict[str, str] = {}
    if known.etag:
        conditional["if-none-match"] = known.etag
    if known.last_modified:
        conditional["if-modified-since"] = known.last_modified
    # identity: the file as stored; a .csv.gz must arrive gzipped, not unpacked on the way.
    plain = {"user-agent": USER_AGENT, "accept-encoding": "identity"}
    timeout = httpx.Timeout(
        connect=limits.connect_timeout,
        read=limits.read_timeout,
        write=limits.read_timeout,
        pool=limits.connect_timeout,
    )
    transport = ssrf.GuardedTransport(
        allow_private=limits.allow_private, timeout=None, allowed=limits.allowed
    )
    with httpx.Client(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        for hop in range(MAX_REDIRECTS + 1):
            # Credentials and custom headers go to the feed's own origin only, never to the
            # host a redirect names.
            ours = _origin(url) == origin
            headers = plain | dict(source.headers) if ours else dict(plain)
            request = client.build_request("GET", url, headers=headers | conditional)
            try:
                response = client.send(request, auth=auth if ours else None, stream=True)
            except (httpx.HTTPError, ssrf.TargetRefused) as exc:
                raise _failure(exc, url, limits, redirected=hop > 0) from None
            try:
                if response.has_redirect_location:
                    url = _redirect_target(url, response)
                    continue
                return _receive(response, url, known, limits, counter, auth is not None)
            except FetchFailed as exc:
                exc.http_status = exc.http_status or response.status_code
                raise
            finally:
                response.close()
    raise FetchFailed(
        f"the server at {origin[1]} redirected more than {MAX_REDIRECTS} times",
        http_status=response.status_code,
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _redirect_target(url: httpx.URL, response: httpx.Response) -> httpx.URL:
    try:
        target = url.join(response.headers["location"])
    except httpx.InvalidURL:
        raise FetchFailed(f"the server at {url.host} redirected to a malformed address") from None
    if target.scheme not in ("http", "https"):
        raise FetchFailed(
            f"the server at {url.host} redirected to a {target.scheme or 'relative'}: address; "
            "feeds follow redirects to http:// and https:// only"
        )
    return target


def _receive(
    response: httpx.Response,
    url: httpx.URL,
    known: Known,
    limits: Limits,
    counter: _Counter,
    with_credentials: bool,
) -> Fetched:
    status = response.status_code
    host = url.host
    if status == 304 and (known.etag or known.last_modified):
        return Fetched(
            unchanged=True,
            filename=_url_filename(url),
            size=0,
            sha256=None,
            etag=response.headers.get("etag") or known.etag,
            last_modified=response.headers.get("last-modified") or known.last_modified,
            http_status=status,
            host_key=None,
        )
    if status in (401, 403):
        if with_credentials:
            raise FetchFailed(f"the server at {host} refused the credentials (HTTP {status})")
        raise FetchFailed(f"the server at {host} needs a user name and password (HTTP {status})")
    if status in (404, 410):
        raise FetchFailed(f"the file was not found on {host} (HTTP {status})")
    if not 200 <= status < 300 or status == 206:
        raise FetchFailed(f"the server at {host} answered HTTP {status}")

    length = _content_length(response)
    counter.expect(length)
    filename = _disposition_filename(response) or _url_filename(url)
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    # A .gz file served "Content-Encoding: gzip" is the file itself; any other encoding the
    # server applied although asked not to is undone, so the bytes match the file's name.
    raw = encoding in ("", "identity") or (encoding == "gzip" and filename.endswith(".gz"))
    try:
        for chunk in response.iter_raw() if raw else response.iter_bytes():
            if not counter.write(chunk):
                break
    except httpx.RemoteProtocolError:
        raise FetchFailed(_cut_short(host, response.num_bytes_downloaded, length)) from None
    except httpx.ReadTimeout:
        raise FetchFailed(
            f"the server at {host} sent nothing for {limits.read_timeout:g} seconds "
            f"(after {_amount(response.num_bytes_downloaded)})"
        ) from None
    except httpx.DecodingError:
        raise FetchFailed(f"the server at {host} sent a body that could not be decoded") from None
    except httpx.HTTPError as exc:
        raise FetchFailed(
            f"the connection to {host} failed after {_amount(response.num_bytes_downloaded)}: "
            f"{exc or type(exc).__name__}"
        ) from None
    if not counter.truncated and length is not None and response.num_bytes_downloaded < length:
        raise FetchFailed(_cut_short(host, response.num_bytes_downloaded, length))
    return Fetched(
        unchanged=counter.unchanged(known),
        filename=filename,
        size=counter.size,
        sha256=counter.sha256(),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        http_status=status,
        host_key=None,
        truncated_at_head=counter.truncated,
    )


def _cut_short(host: str, received: int, length: int | None) -> str:
    if length is None:
        return f"the connection to {host} broke after {received:,} bytes: the file is incomplete"
    return (
        f"the connection to {host} closed after {received:,} of {length:,} bytes: "
        "the file is truncated"
    )


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


_FILENAME = re.compile(r"""filename(\*?)\s*=\s*(?:"([^"]*)"|([^;\s]+))""", re.IGNORECASE)


def _disposition_filename(response: httpx.Response) -> str:
    """filename*=UTF-8''name%20encoded (RFC 6266) wins over a plain filename="name"."""
    found = {
        star: quoted or bare
        for star, quoted, bare in _FILENAME.findall(response.headers.get("content-disposition", ""))
    }
    if "*" in found:
        parts = found["*"].split("'", 2)
        charset, encoded = (parts[0], parts[2]) if len(parts) == 3 else ("utf-8", parts[-1])
        try:
            return _clean_name(unquote(encoded, encoding=charset or "utf-8", errors="replace"))
        except LookupError:
            return _clean_name(unquote(encoded, errors="replace"))
    return _clean_name(found.get("", ""))


def _url_filename(url: httpx.URL) -> str:
    return _clean_name(unquote(posixpath.basename(url.path))) or "download"


def _clean_name(name: str) -> str:
    """The last path segment only, printable, at most 255 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    return "" if name in (".", "..") else name[-255:]


def _failure(exc: Exception, url: httpx.URL, limits: Limits, *, redirected: bool) -> FetchFailed:
    host = url.host
    where = f"{host}:{url.port}" if url.port else host
    if isinstance(exc, ssrf.NameNotResolved):
        hint = "a redirect named it" if redirected else "check the address"
        return FetchFailed(f"the host name {host} could not be found (DNS): {hint}")
    if isinstance(exc, ssrf.TargetRefused):
        if redirected:
            return FetchFailed(
                f"the server redirected to {host}, which is not a public address ({exc})"
            )
        return FetchFailed(f"refused to connect to {host}: {exc}")
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchFailed(
            f"could not connect to {where} within {limits.connect_timeout:g} seconds"
        )
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailed(
            f"the server at {host} did not answer within {limits.read_timeout:g} seconds"
        )
    if isinstance(exc, httpx.ConnectError):
        return FetchFailed(_connect_problem(exc, host, where))
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchFailed(f"the server at {host} did not answer with valid HTTP: {exc}")
    return FetchFailed(f"the request to {host} failed: {exc or type(exc).__name__}")


def _connect_problem(exc: BaseException, host: str, where: str) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {host} could not be verified "
                f"({cause.verify_message or cause.reason})"
            )
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake with {host} failed ({cause.reason or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return f"{where} refused the connection (no web server is listening there)"
        cause = cause.__cause__ or cause.__context__
    return f"could not connect to {where}: {exc}"


def _split(url: str) -> SplitResult:
    """urlsplit with the checks both schemes share: a host, a port from 1 to 65535."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"URL is malformed: {exc}") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError("URL port must be a number between 1 and 65535") from None
    if not parts.hostname:
        raise ValueError("URL has no host")
    if port == 0:
        raise ValueError("URL port must be a number between 1 and 65535")
    return parts
