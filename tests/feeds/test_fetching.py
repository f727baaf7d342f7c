"""The feed fetchers against real servers on loopback: HTTP(S) with conditional requests, limits,
redirects and failures; SFTP with pinned host keys, password and key logins, and globs."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import io
import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from product_importer.feeds import fetching
from product_importer.feeds.fetching import (
    Fetched,
    FetchFailed,
    HostKeyChanged,
    HostKeyUnknown,
    Known,
    Limits,
    Source,
)
from product_importer.webhooks import ssrf
from tests.feeds import servers
from tests.feeds.servers import PRODUCTS, HttpServer, SftpServer

SHA = hashlib.sha256(PRODUCTS).hexdigest()
# Generous where time is not the subject: the suite runs on a loaded 2-core machine.
PATIENT = {"connect_timeout": 30.0, "read_timeout": 60.0}


def limits(**overrides: object) -> Limits:
    values: dict[str, object] = {"max_bytes": 64 * 2**20, "allow_private": True} | PATIENT
    return Limits(**(values | overrides))  # type: ignore[arg-type]


def fetch(
    url: str, known: Known | None = None, lim: Limits | None = None, **source: object
) -> tuple[Fetched, bytes]:
    sink = io.BytesIO()
    fetched = fetching.fetch(
        Source(url, **source),  # type: ignore[arg-type]
        known or Known(),
        lim or limits(),
        sink,
    )
    return fetched, sink.getvalue()


def failure(
    url: str, known: Known | None = None, lim: Limits | None = None, **source: object
) -> FetchFailed:
    with pytest.raises(FetchFailed) as caught:
        fetch(url, known, lim, **source)
    return caught.value


@pytest.fixture
def http() -> Iterator[HttpServer]:
    server = HttpServer()
    server.start()
    yield server
    server.stop()


# HTTP: the file, conditional requests, unchanged content ------------------------------------


def test_a_file_is_streamed_with_its_validators_and_digest(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/products.csv"))
    assert body == PRODUCTS
    assert fetched == Fetched(
        unchanged=False,
        filename="products.csv",
        size=len(PRODUCTS),
        sha256=SHA,
        etag=servers.ETAG,
        last_modified=servers.LAST_MODIFIED,
        http_status=200,
        host_key=None,
    )
    headers = http.requests[0].headers
    assert headers["accept-encoding"] == "identity"
    assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_a_matching_etag_is_answered_304_and_nothing_is_written(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/products.csv"), Known(etag=servers.ETAG, sha256=SHA))
    assert body == b""
    assert fetched.unchanged and fetched.http_status == 304 and fetched.size == 0
    assert fetched.sha256 is None and fetched.etag == servers.ETAG
    assert http.requests[0].headers["if-none-match"] == servers.ETAG


def test_a_matching_last_modified_is_answered_304(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/products.csv"), Known(last_modified=servers.LAST_MODIFIED))
    assert fetched.unchanged and body == b""
    assert fetched.last_modified == servers.LAST_MODIFIED
    assert http.requests[0].headers["if-modified-since"] == servers.LAST_MODIFIED


def test_a_stale_etag_downloads_the_file_again(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/products.csv"), Known(etag='"old"', sha256="0" * 64))
    assert not fetched.unchanged and body == PRODUCTS and fetched.http_status == 200


def test_the_same_content_without_validators_is_unchanged_by_its_digest(
    http: HttpServer,
) -> None:
    fetched, body = fetch(http.url("/plain.csv"), Known(sha256=SHA.upper()))
    assert fetched.unchanged
    assert body == PRODUCTS and fetched.size == len(PRODUCTS) and fetched.sha256 == SHA
    assert fetched.etag is None and fetched.last_modified is None


def test_a_preview_stops_after_head_bytes(http: HttpServer) -> None:
    sink = io.BytesIO()
    fetched = fetching.fetch(
        Source(http.url("/products.csv")), Known(sha256=SHA), limits(), sink, head_bytes=1000
    )
    assert sink.getvalue() == PRODUCTS[:1000]
    assert fetched.truncated_at_head and fetched.sha256 is None and not fetched.unchanged
    assert fetched.size == 1000


def test_a_preview_of_a_file_shorter_than_head_bytes_is_the_whole_file(http: HttpServer) -> None:
    sink = io.BytesIO()
    fetched = fetching.fetch(
        Source(http.url("/plain.csv")), Known(), limits(), sink, head_bytes=len(PRODUCTS)
    )
    assert sink.getvalue() == PRODUCTS
    assert not fetched.truncated_at_head and fetched.sha256 == SHA


def test_the_content_disposition_name_wins_over_the_path(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/export"))
    assert fetched.filename == "export 2026\u2013dec.csv.gz"  # filename*, its path dropped
    assert gzip.decompress(body) == PRODUCTS


def test_a_gz_file_served_gzip_encoded_arrives_as_stored(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/stored.csv.gz"))
    assert fetched.filename == "stored.csv.gz" and gzip.decompress(body) == PRODUCTS


def test_an_encoding_applied_although_refused_is_undone(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/gzipped.csv"))
    assert body == PRODUCTS and fetched.sha256 == SHA


# HTTP: credentials and headers --------------------------------------------------------------


def test_basic_auth_with_the_right_password(http: HttpServer) -> None:
    _fetched, body = fetch(
        http.url("/private.csv"), username=servers.USER, password=servers.PASSWORD
    )
    assert body == PRODUCTS


def test_a_wrong_password_is_refused_credentials_and_never_repeated(http: HttpServer) -> None:
    wrong = "Wr0ng-Secret-Value"
    exc = failure(http.url("/private.csv"), username=servers.USER, password=wrong)
    assert str(exc) == "the server at 127.0.0.1 refused the credentials (HTTP 401)"
    assert exc.http_status == 401
    assert wrong not in repr(exc.__dict__) and wrong not in str(exc.__cause__)


def test_no_credentials_where_they_are_needed(http: HttpServer) -> None:
    exc = failure(http.url("/private.csv"))
    assert "needs a user name and password (HTTP 401)" in str(exc)


def test_custom_headers_are_sent(http: HttpServer) -> None:
    _fetched, body = fetch(http.url("/needs-key.csv"), headers={"X-Api-Key": servers.API_KEY})
    assert body == PRODUCTS
    exc = failure(http.url("/needs-key.csv"), headers={"X-Api-Key": "nope"})
    assert exc.http_status == 403 and "HTTP 403" in str(exc)


def test_secrets_stay_out_of_a_sources_repr() -> None:
    source = Source(
        "https://erp.example.com/p.csv",
        headers={"Authorization": "Bearer tok-123"},
        username="u",
        password="pw-456",
        private_key="-----BEGIN OPENSSH PRIVATE KEY-----",
    )
    text = repr(source)
    assert "tok-123" not in text and "pw-456" not in text and "PRIVATE" not in text


# HTTP: redirects ----------------------------------------------------------------------------


def test_a_redirect_is_followed_and_names_the_file_it_reached(http: HttpServer) -> None:
    fetched, body = fetch(http.url("/redirect/products"))
    assert body == PRODUCTS and fetched.filename == "products.csv"
    assert http.paths() == ["/redirect/products", "/products.csv"]


def test_credentials_follow_a_redirect_on_the_same_origin_only(http: HttpServer) -> None:
    _fetched, body = fetch(
        http.url("/redirect/private"), username=servers.USER, password=servers.PASSWORD
    )
    assert body == PRODUCTS

    http.requests.clear()
    _fetched, body = fetch(
        http.url("/redirect/other-origin", host="localhost"),
        username=servers.USER,
        password=servers.PASSWORD,
        headers={"X-Api-Key": servers.API_KEY},
    )
    first, second = http.requests
    assert "authorization" in first.headers and first.headers["x-api-key"] == servers.API_KEY
    assert "authorization" not in second.headers and "x-api-key" not in second.headers


def test_a_redirect_to_a_loopback_address_is_refused(http: HttpServer) -> None:
    # localhost is allowed by name; the redirect names 127.0.0.1, which is not.
    lim = limits(allow_private=False, allowed=("localhost",))
    exc = failure(http.url("/redirect/loopback", host="localhost"), lim=lim)
    assert str(exc).startswith("the server redirected to 127.0.0.1, which is not a public address")
    assert "loopback" in str(exc)
    assert http.paths() == ["/redirect/loopback"]


def test_more_than_five_redirects_fail(http: HttpServer) -> None:
    exc = failure(http.url("/redirect/loop"))
    assert "redirected more than 5 times" in str(exc) and exc.http_status == 302
    assert len(http.requests) == 6


def test_a_redirect_to_another_scheme_is_refused(http: HttpServer) -> None:
    exc = failure(http.url("/redirect/ftp"))
    assert "redirected to a ftp: address" in str(exc)


# HTTP: the address guard --------------------------------------------------------------------


def test_loopback_is_refused_unless_allowed(http: HttpServer) -> None:
    url = http.url("/products.csv")
    exc = failure(url, lim=limits(allow_private=False))
    assert "127.0.0.1 is a loopback address" in str(exc)
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 is a loopback address"):
        fetching.check_source_host(url, limits(allow_private=False))
    assert http.requests == []

    for allowed in (("127.0.0.1",), ("127.0.0.0/8",)):
        lim = limits(allow_private=False, allowed=allowed)
        fetching.check_source_host(url, lim)
        assert fetch(url, lim=lim)[1] == PRODUCTS


def test_a_loopback_name_is_refused(http: HttpServer) -> None:
    exc = failure(http.url("/products.csv", host="localhost"), lim=limits(allow_private=False))
    assert "localhost is a loopback name" in str(exc)
    assert http.requests == []


@pytest.mark.parametrize(
    ("url", "allowed", "message"),
    [
        ("http://localhost/f.csv", (), "localhost is a loopback name"),
        ("https://10.1.2.3/f.csv", (), "10.1.2.3 is a private address"),
        ("https://169.254.169.254/latest", ("10.0.0.0/8",), "link-local"),
        ("sftp://u@[::1]/f.csv", (), "::1 is a loopback address"),
    ],
)
def test_check_source_host_refuses_plainly_local_hosts(
    url: str, allowed: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fetching.check_source_host(url, Limits(max_bytes=1, allowed=allowed))


def test_check_source_host_lets_allowed_and_public_hosts_through() -> None:
    strict = Limits(max_bytes=1)
    fetching.check_source_host("https://erp.example.com/f.csv", strict)
    fetching.check_source_host(
        "https://10.1.2.3/f.csv", Limits(max_bytes=1, allowed=("10.0.0.0/8",))
    )
    fetching.check_source_host(
        "sftp://u@erp.office.lan/f.csv", Limits(max_bytes=1, allowed=("ERP.office.lan.",))
    )
    fetching.check_source_host("http://localhost/f.csv", Limits(max_bytes=1, allow_private=True))


def test_the_allow_list_is_checked_against_resolved_addresses() -> None:
    allowed = ssrf.Allowed.parse(["10.0.0.0/8", "192.168.1.7", "erp.office.lan"])
    check = ssrf.refused_reason
    assert check(ipaddress.ip_address("10.9.8.7"), allowed=allowed) is None
    assert check(ipaddress.ip_address("::ffff:10.9.8.7"), allowed=allowed) is None
    assert check(ipaddress.ip_address("192.168.1.7"), allowed=allowed) is None
    assert check(ipaddress.ip_address("192.168.1.8"), allowed=allowed) == "private"
    assert check(ipaddress.ip_address("127.0.0.1"), allowed=allowed) == "loopback"
    assert check(ipaddress.ip_address("127.0.0.1"), allow_private=True) is None
    with pytest.raises(ValueError, match="not a host name"):
        ssrf.Allowed.parse(["10.0.0.0/99"])


# HTTP: limits and failures ------------------------------------------------------------------


def test_a_slow_server_fails_on_the_read_timeout(http: HttpServer) -> None:
    started = time.monotonic()
    exc = failure(http.url("/slow.csv"), lim=limits(read_timeout=0.5))
    assert str(exc).startswith("the server at 127.0.0.1 sent nothing for 0.5 seconds")
    assert exc.http_status == 200
    assert time.monotonic() - started < 30


def test_a_server_error_names_its_status(http: HttpServer) -> None:
    exc = failure(http.url("/error.csv"))
    assert str(exc) == "the server at 127.0.0.1 answered HTTP 500" and exc.http_status == 500


@pytest.mark.parametrize(("path", "status"), [("/missing.csv", 404), ("/gone.csv", 410)])
def test_a_missing_file_is_not_found(http: HttpServer, path: str, status: int) -> None:
    exc = failure(http.url(path))
    assert str(exc) == f"the file was not found on 127.0.0.1 (HTTP {status})"
    assert exc.http_status == status


def test_a_body_shorter_than_its_content_length_is_truncated(http: HttpServer) -> None:
    exc = failure(http.url("/truncated.csv"))
    assert str(exc) == (
        "the connection to 127.0.0.1 closed after 400 of 1,000 bytes: the file is truncated"
    )
    assert exc.http_status == 200


def test_a_stream_without_length_fails_once_over_the_limit(http: HttpServer) -> None:
    sink = io.BytesIO()
    with pytest.raises(FetchFailed, match="larger than the limit of 1 MB") as caught:
        fetching.fetch(Source(http.url("/endless.csv")), Known(), limits(max_bytes=2**20), sink)
    assert caught.value.http_status == 200
    assert len(sink.getvalue()) <= 2**20


def test_a_huge_content_length_fails_before_reading(http: HttpServer) -> None:
    sink = io.BytesIO()
    started = time.monotonic()
    with pytest.raises(FetchFailed) as caught:
        fetching.fetch(Source(http.url("/huge.csv")), Known(), limits(max_bytes=2**20), sink)
    assert str(caught.value) == "the file is 10,240 MB, larger than the limit of 1 MB"
    assert sink.getvalue() == b""
    assert time.monotonic() - started < 30  # the server holds the rest until the test ends


def test_a_refused_connection(http: HttpServer) -> None:
    port = servers.free_port()
    exc = failure(f"http://127.0.0.1:{port}/f.csv")
    assert str(exc) == f"127.0.0.1:{port} refused the connection (no web server is listening there)"
    assert exc.http_status is None


def test_a_connect_timeout() -> None:
    backlog = servers.FullBacklog()
    try:
        if not backlog.full:
            pytest.skip("this kernel accepted every connection to a full backlog")
        exc = failure(f"http://127.0.0.1:{backlog.port}/f.csv", lim=limits(connect_timeout=0.5))
        assert str(exc) == f"could not connect to 127.0.0.1:{backlog.port} within 0.5 seconds"
    finally:
        backlog.stop()


def test_a_name_that_does_not_resolve() -> None:
    exc = failure("https://no-such-host.invalid/products.csv", lim=limits(allow_private=False))
    assert str(exc).startswith("the host name no-such-host.invalid could not be found (DNS)")


def test_an_untrusted_certificate() -> None:
    server = HttpServer(tls=servers.self_signed_tls())
    server.start()
    try:
        exc = failure(server.url("/products.csv"))
    finally:
        server.stop()
    assert str(exc).startswith("the TLS certificate of 127.0.0.1 could not be verified")
    assert "self-signed" in str(exc) or "self signed" in str(exc)


# The URL's shape ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "file: URLs are not supported; a feed URL must start with "),
        ("ftp://example.com/p.csv", "ftp: URLs are not supported"),
        ("gopher://example.com/", "gopher: URLs are not supported"),
        ("javascript:alert(1)", "javascript: URLs are not supported"),
        ("data:text/csv,a", "data: URLs are not supported"),
        ("https:example.com/p.csv", "must start with https://, http:// or sftp://"),
        ("example.com/p.csv", "must start with https://, http:// or sftp://"),
        ("https://user:pw@example.com/p.csv", "must not contain a password"),
        ("https://user@example.com/p.csv", "must not contain a user name"),
        ("sftp://user:pw@example.com/p.csv", "must not contain a password"),
        ("https:///p.csv", "URL has no host"),
        ("sftp:///p.csv", "URL has no host"),
        ("https://example.com:0/p.csv", "port must be a number between 1 and 65535"),
        ("https://example.com:70000/p.csv", "port must be a number between 1 and 65535"),
        ("sftp://u@example.com:x/p.csv", "port must be a number between 1 and 65535"),
        ("https://[::1/p.csv", "malformed"),
        ("sftp://example.com/p.csv", "an sftp:// URL needs a user name"),
        ("sftp://u@example.com", "an sftp:// URL needs the path of a file"),
        ("sftp://u@example.com/", "an sftp:// URL needs the path of a file"),
        ("sftp://u@example.com/out/", "an sftp:// URL needs the path of a file"),
        ("https://exa mple.com/p.csv", "spaces or control characters"),
        ("https://example.com/p.csv\r\nX: 1", "spaces or control characters"),
        ("https://example.com/" + "a" * 2000, "longer than 2000 characters"),
    ],
)
def test_check_source_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        fetching.check_source_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://erp.example.com/export/products.csv?token=abc",
        "http://[2606:4700::1]:8080/p.csv",
        "HTTPS://Example.com/p.csv",
        "sftp://feeds@sftp.example.com/out/products.csv",
        "sftp://feeds@10.0.0.5:2222/out/products-*.csv",
        "sftp://feeds@sftp.example.com/out/products-?.csv",
        "sftp://feeds@sftp.example.com/~/products.csv",
    ],
)
def test_check_source_url_accepts(url: str) -> None:
    assert fetching.check_source_url(url) == url


def test_fetch_checks_the_url_too() -> None:
    exc = failure("file:///etc/passwd")
    assert "file: URLs are not supported" in str(exc)


# SFTP --------------------------------------------------------------------------------------


@pytest.fixture
def sftp_root(tmp_path: Path) -> Path:
    root = tmp_path / "sftp"
    (root / "out").mkdir(parents=True)
    (root / "out" / "products.csv").write_bytes(PRODUCTS)
    return root


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def sftp_server(sftp_root: Path, client_key: asyncssh.SSHKey) -> Iterator[SftpServer]:
    server = SftpServer(sftp_root, client_keys=[client_key.public_data])
    server.start()
    yield server
    server.stop()


def sftp_fetch(
    server: SftpServer, path: str, *, known: Known | None = None, **source: object
) -> tuple[Fetched, bytes]:
    source = {"password": server.password, "host_key": server.fingerprint} | source
    return fetch(server.url(path), known, source.pop("lim", None), **source)  # type: ignore[arg-type]


def test_sftp_download_with_a_password(sftp_server: SftpServer, sftp_root: Path) -> None:
    os.utime(sftp_root / "out" / "products.csv", (1_790_000_000, 1_790_000_000))
    fetched, body = sftp_fetch(sftp_server, "/out/products.csv")
    assert body == PRODUCTS
    assert fetched == Fetched(
        unchanged=False,
        filename="products.csv",
        size=len(PRODUCTS),
        sha256=SHA,
        etag=None,
        last_modified=email.utils.formatdate(1_790_000_000, usegmt=True),
        http_status=None,
        host_key=sftp_server.fingerprint,
    )


@pytest.mark.parametrize(
    ("algorithm", "form"),
    [
        ("ssh-ed25519", "openssh"),
        ("ecdsa-sha2-nistp256", "pkcs1-pem"),
        ("ecdsa-sha2-nistp384", "openssh"),
        ("ssh-rsa", "pkcs1-pem"),
        ("ssh-rsa", "pkcs8-pem"),
    ],
)
def test_sftp_download_with_a_private_key(
    sftp_server: SftpServer, algorithm: str, form: str
) -> None:
    key = asyncssh.generate_private_key(algorithm)
    sftp_server.client_keys.append(key.public_data)
    text = key.export_private_key(form).decode()
    fetched, body = sftp_fetch(sftp_server, "/out/products.csv", password=None, private_key=text)
    assert body == PRODUCTS and fetched.sha256 == SHA


def test_sftp_a_refused_key(sftp_server: SftpServer) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    with pytest.raises(FetchFailed) as caught:
        sftp_fetch(sftp_server, "/out/products.csv", private_key=stranger)
    assert str(caught.value) == (
        f"the SFTP server 127.0.0.1:{sftp_server.port} refused the user name 'feeds' "
        "with the key given: check the credentials"
    )
    assert "PRIVATE" not in str(caught.value)


def test_sftp_the_user_may_be_given_apart_from_the_url(sftp_server: SftpServer) -> None:
    url = sftp_server.url("/out/products.csv", user="somebody-else")
    _fetched, body = fetch(
        url,
        username=sftp_server.username,
        password=sftp_server.password,
        host_key=sftp_server.fingerprint,
    )
    assert body == PRODUCTS


def test_sftp_an_unknown_host_key_is_shown_and_nothing_is_sent(
    sftp_server: SftpServer, client_key: asyncssh.SSHKey
) -> None:
    with pytest.raises(HostKeyUnknown) as caught:
        sftp_fetch(sftp_server, "/out/products.csv", host_key=None)
    assert caught.value.host_key == sftp_server.fingerprint
    assert f"confirm fingerprint {sftp_server.fingerprint}" in str(caught.value)
    assert "ssh-ed25519" in str(caught.value)
    assert sftp_server.auth_attempts == []  # not even the user name left before the key matched


def test_the_fingerprint_is_the_one_ssh_keygen_prints(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    key = sftp_server.host_key
    assert fetching.fingerprint(key) == sftp_server.fingerprint
    assert fetching.fingerprint(key.public_data) == sftp_server.fingerprint
    line = key.export_public_key().decode()
    assert fetching.fingerprint(line) == sftp_server.fingerprint
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        return
    (tmp_path / "host.pub").write_text(line)
    printed = subprocess.run(
        [keygen, "-l", "-E", "sha256", "-f", str(tmp_path / "host.pub")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed.split()[1] == sftp_server.fingerprint


def test_sftp_a_changed_host_key_is_refused(sftp_server: SftpServer) -> None:
    old = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    with pytest.raises(HostKeyChanged) as caught:
        sftp_fetch(sftp_server, "/out/products.csv", host_key=old)
    assert caught.value.host_key == sftp_server.fingerprint
    assert f"it was {old}, now it is {sftp_server.fingerprint}" in str(caught.value)
    assert sftp_server.auth_attempts == []


def test_sftp_a_pinned_key_pasted_with_padding_still_matches(sftp_server: SftpServer) -> None:
    _fetched, body = sftp_fetch(
        sftp_server, "/out/products.csv", host_key=f"256 {sftp_server.fingerprint}= x (ED25519)"
    )
    assert body == PRODUCTS


def test_sftp_a_wrong_password(sftp_server: SftpServer) -> None:
    wrong = "Not-The-Pa55word"
    with pytest.raises(FetchFailed) as caught:
        sftp_fetch(sftp_server, "/out/products.csv", password=wrong)
    assert type(caught.value) is FetchFailed
    assert str(caught.value) == (
        f"the SFTP server 127.0.0.1:{sftp_server.port} refused the user name 'feeds' "
        "with the password given: check the credentials"
    )
    assert wrong not in str(caught.value) and caught.value.http_status is None


def test_sftp_without_password_or_key(sftp_server: SftpServer) -> None:
    with pytest.raises(FetchFailed, match="needs a password or a private key for feeds"):
        sftp_fetch(sftp_server, "/out/products.csv", password=None)


def test_sftp_an_unreadable_private_key(sftp_server: SftpServer) -> None:
    with pytest.raises(FetchFailed, match="the private key could not be read"):
        sftp_fetch(sftp_server, "/out/products.csv", private_key="-----BEGIN nonsense")
    encrypted = asyncssh.generate_private_key("ssh-ed25519").export_private_key(
        "pkcs8-pem", passphrase="pass-phrase"
    )
    with pytest.raises(FetchFailed, match="protected by a passphrase"):
        sftp_fetch(sftp_server, "/out/products.csv", private_key=encrypted.decode())


def test_sftp_a_glob_takes_the_newest_regular_file(
    sftp_server: SftpServer, sftp_root: Path
) -> None:
    out = sftp_root / "out"
    for name, mtime in [
        ("products-001.csv", 1_700_000_000),
        ("products-003.csv", 1_700_000_300),  # newest, by time, not by name
        ("products-004.csv", 1_700_000_100),
        ("other-999.csv", 1_800_000_000),
    ]:
        (out / name).write_text(name)
        os.utime(out / name, (mtime, mtime))
    (out / "products-999.csv").mkdir()  # a folder never matches
    os.utime(out / "products-999.csv", (1_900_000_000, 1_900_000_000))
    fetched, body = sftp_fetch(sftp_server, "/out/products-*.csv")
    assert fetched.filename == "products-003.csv" and body == b"products-003.csv"

    (out / "products-005.csv").write_text("products-005.csv")
    (out / "products-002.csv").write_text("products-002.csv")
    for name in ("products-005.csv", "products-002.csv"):
        os.utime(out / name, (1_700_000_300, 1_700_000_300))
    fetched, _body = sftp_fetch(sftp_server, "/out/products-00[0-9].csv")
    assert fetched.filename == "products-005.csv"  # a tie goes to the greatest name
    fetched, _body = sftp_fetch(sftp_server, "/out/products-00?.csv")
    assert fetched.filename == "products-005.csv"


def test_sftp_a_glob_without_a_match(sftp_server: SftpServer) -> None:
    with pytest.raises(FetchFailed, match=r"no file matches prices-\*.csv in /out on 127.0.0.1"):
        sftp_fetch(sftp_server, "/out/prices-*.csv")


def test_sftp_a_missing_file(sftp_server: SftpServer) -> None:
    with pytest.raises(FetchFailed) as caught:
        sftp_fetch(sftp_server, "/out/nothing.csv")
    assert str(caught.value) == (
        f"there is no file or folder /out/nothing.csv on the SFTP server "
        f"127.0.0.1:{sftp_server.port}"
    )
    assert caught.value.host_key == sftp_server.fingerprint


def test_sftp_a_folder_is_not_a_file(sftp_server: SftpServer) -> None:
    with pytest.raises(FetchFailed, match=r"/out on 127\.0\.0\.1:[0-9]+ is a folder, not a file"):
        sftp_fetch(sftp_server, "/out")


def test_sftp_a_file_over_the_limit(sftp_server: SftpServer) -> None:
    sink = io.BytesIO()
    source = Source(
        sftp_server.url("/out/products.csv"),
        password=sftp_server.password,
        host_key=sftp_server.fingerprint,
    )
    with pytest.raises(FetchFailed, match="larger than the limit of 1,000 bytes"):
        fetching.fetch(source, Known(), limits(max_bytes=1000), sink)
    assert sink.getvalue() == b""


def test_sftp_unchanged_by_digest(sftp_server: SftpServer) -> None:
    fetched, body = sftp_fetch(sftp_server, "/out/products.csv", known=Known(sha256=SHA))
    assert fetched.unchanged and body == PRODUCTS and fetched.sha256 == SHA


def test_sftp_a_preview(sftp_server: SftpServer) -> None:
    sink = io.BytesIO()
    source = Source(
        sftp_server.url("/out/products.csv"),
        password=sftp_server.password,
        host_key=sftp_server.fingerprint,
    )
    fetched = fetching.fetch(source, Known(), limits(), sink, head_bytes=5000)
    assert sink.getvalue() == PRODUCTS[:5000]
    assert fetched.truncated_at_head and fetched.sha256 is None and fetched.size == 5000


def test_sftp_loopback_is_refused_unless_allowed(sftp_server: SftpServer) -> None:
    with pytest.raises(FetchFailed, match=r"127\.0\.0\.1 is a loopback address"):
        sftp_fetch(sftp_server, "/out/products.csv", lim=limits(allow_private=False))
    assert sftp_server.connections == 0
    _fetched, body = sftp_fetch(
        sftp_server, "/out/products.csv", lim=limits(allow_private=False, allowed=("127.0.0.0/8",))
    )
    assert body == PRODUCTS


def test_sftp_a_name_is_vetted_by_its_addresses(sftp_server: SftpServer) -> None:
    url = f"sftp://feeds@localhost:{sftp_server.port}/out/products.csv"
    with pytest.raises(FetchFailed, match="localhost is a loopback name"):
        fetch(url, lim=limits(allow_private=False), password="x", host_key="SHA256:x")
    _fetched, body = fetch(
        url,
        lim=limits(allow_private=False, allowed=("localhost",)),
        password=sftp_server.password,
        host_key=sftp_server.fingerprint,
    )
    assert body == PRODUCTS


def test_sftp_a_refused_connection() -> None:
    port = servers.free_port()
    exc = failure(f"sftp://u@127.0.0.1:{port}/f.csv", password="x")
    assert (
        str(exc) == f"127.0.0.1:{port} refused the connection (no SFTP server is listening there)"
    )


def test_sftp_a_server_that_never_speaks() -> None:
    silent = servers.SilentServer()
    try:
        exc = failure(
            f"sftp://u@127.0.0.1:{silent.port}/f.csv", lim=limits(read_timeout=0.5), password="x"
        )
    finally:
        silent.stop()
    assert str(exc) == (
        f"127.0.0.1:{silent.port} did not answer as an SSH server within 0.5 seconds"
    )
