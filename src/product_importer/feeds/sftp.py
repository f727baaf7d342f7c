"""Download one file over SFTP: a vetted address, a pinned host key, then a bounded stream.

The server's key is trusted only when it matches the fingerprint the user confirmed: never the
machine's known_hosts, never "add on first sight". Without a pinned key nothing is sent, not even
the user name, so a merchant can be shown the fingerprint to confirm before any credential leaves.

`fetching` is the public face (it maps `SftpError` to its FetchFailed family); this module knows
nothing of feeds, only how to fetch bytes from an SFTP server into a `Sink`.
"""

from __future__ import annotations

import base64
import errno
import fnmatch
import hashlib
import io
import posixpath
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from product_importer.webhooks import ssrf

_READ_SIZE = 256 * 1024
# Reads in flight at once (32 KiB each): enough to fill a fast link, bounded in memory.
_PREFETCH_REQUESTS = 64
_GLOB_CHARS = frozenset("*?[")


class SftpError(Exception):
    """A plain-English reason; `key_problem` says when the host key is the reason."""

    def __init__(
        self,
        reason: str,
        *,
        host_key: str | None = None,
        key_problem: Literal["unknown", "changed"] | None = None,
    ) -> None:
        super().__init__(reason)
        self.host_key = host_key
        self.key_problem = key_problem


class Sink(Protocol):
    """Where the bytes go; it enforces the size limit by raising, and may stop the read early."""

    reads_at_most: int

    def expect(self, size: int | None) -> None: ...

    def write(self, chunk: bytes) -> bool: ...


@dataclass(frozen=True)
class Target:
    user: str
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class Remote:
    filename: str
    mtime: int | None
    host_key: str


def fingerprint(key: object) -> str:
    """The key's SHA-256 fingerprint as `ssh-keygen -l` prints it ("SHA256:" + unpadded base64).

    Takes the public key blob (bytes), an OpenSSH public key line ("ssh-ed25519 AAAA… comment"),
    a paramiko key or an asyncssh key.
    """
    blob: bytes
    if isinstance(key, bytes | bytearray | memoryview):
        blob = bytes(key)
    elif isinstance(key, str):
        fields = key.split()
        if not fields:
            raise ValueError("an empty string is not a public key")
        try:
            blob = base64.b64decode(fields[1] if len(fields) > 1 else fields[0], validate=True)
        except ValueError:
            raise ValueError("not an OpenSSH public key line") from None
    elif callable(getattr(key, "asbytes", None)):  # paramiko
        blob = bytes(key.asbytes())  # type: ignore[attr-defined]
    elif isinstance(getattr(key, "public_data", None), bytes):  # asyncssh
        blob = key.public_data  # type: ignore[attr-defined]
    else:
        raise TypeError(f"cannot take the fingerprint of a {type(key).__name__}")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def same_fingerprint(pinned: str, seen: str) -> bool:
    """Compare as ssh-keygen prints them, tolerant of padding and of a pasted `-l` line."""

    def norm(value: str) -> str:
        token = next((t for t in value.split() if t.startswith("SHA256:")), value.strip())
        return token.removeprefix("SHA256:").rstrip("=")

    return norm(pinned) == norm(seen)


def load_private_key(text: str) -> paramiko.PKey:
    """An unencrypted RSA, Ed25519 or ECDSA key in OpenSSH, PKCS#1/SEC1 or PKCS#8 PEM form."""
    data = text.strip().encode("utf-8") + b"\n"
    try:
        try:
            loaded: Any = serialization.load_ssh_private_key(data, password=None)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError("the private key is protected by a passphrase; give it without") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(
            "the private key could not be read: give an RSA, Ed25519 or ECDSA key "
            "in OpenSSH or PEM form"
        ) from None
    key_class: Any
    if isinstance(loaded, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    elif isinstance(loaded, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    else:
        raise ValueError("the private key is not an RSA, Ed25519 or ECDSA key")
    # paramiko reads PKCS#8 ("BEGIN PRIVATE KEY") for no key type: hand it OpenSSH form always.
    openssh = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    key: paramiko.PKey = key_class.from_private_key(io.StringIO(openssh.decode("ascii")))
    return key


def download(
    target: Target,
    *,
    username: str,
    password: str | None,
    private_key: str | None,
    pinned: str | None,
    connect_timeout: float,
    read_timeout: float,
    allow_private: bool,
    allowed: Sequence[str],
    sink: Sink,
) -> Remote:
    """Stream the file at the target's path (its last segment may be a glob) into the sink."""
    host, port, path = target.host, target.port, target.path
    where = f"{host}:{port}" if port != 22 else host
    pkey = None
    if private_key:
        try:
            pkey = load_private_key(private_key)
        except ValueError as exc:
            raise SftpError(str(exc)) from None
    sock = _connect(host, port, where, connect_timeout, allow_private, allowed)
    try:
        transport = paramiko.Transport(sock)
    except BaseException:
        sock.close()
        raise
    try:
        seen, key_type = _handshake(transport, where, read_timeout)
        if not pinned:
            raise SftpError(
                f"the SFTP server {where} is not trusted yet: it presented a {key_type} host key; "
                f"confirm fingerprint {seen} if it is your server's",
                host_key=seen,
                key_problem="unknown",
            )
        if not same_fingerprint(pinned, seen):
            raise SftpError(
                f"the host key of the SFTP server {where} has changed: it was {pinned}, "
                f"now it is {seen}. If the server was reinstalled, confirm the new fingerprint; "
                "otherwise someone may be intercepting the connection",
                host_key=seen,
                key_problem="changed",
            )
        _authenticate(transport, where, username, password, pkey)
        try:
            client = paramiko.SFTPClient.from_transport(transport)
            if client is None:
                raise SftpError(f"the SSH server {where} offers no SFTP", host_key=seen)
            client.get_channel().settimeout(read_timeout)
            chosen, attrs = _choose(client, path, where)
            sink.expect(attrs.st_size)
            _stream(client, chosen, attrs.st_size, sink)
        except TimeoutError:
            raise SftpError(
                f"the SFTP server {where} sent nothing for {read_timeout:g} seconds",
                host_key=seen,
            ) from None
        except OSError as exc:
            raise SftpError(_file_problem(exc, path, where), host_key=seen) from None
        except (paramiko.SSHException, EOFError):
            raise SftpError(
                f"the connection to the SFTP server {where} was lost during the download",
                host_key=seen,
            ) from None
        mtime = attrs.st_mtime
        return Remote(posixpath.basename(chosen), int(mtime) if mtime else None, seen)
    finally:
        transport.close()


def _connect(
    host: str,
    port: int,
    where: str,
    timeout: float,
    allow_private: bool,
    allowed: Sequence[str],
) -> socket.socket:
    try:
        addresses = ssrf.vetted_addresses(host, port, allow_private=allow_private, allowed=allowed)
    except ssrf.NameNotResolved:
        raise SftpError(f"the host name {host} could not be found (DNS)") from None
    except ssrf.TargetRefused as exc:
        raise SftpError(f"refused to connect to {host}: {exc}") from None
    problem = ""
    for address in addresses:
        try:
            # The vetted address itself: resolving the name again could answer another one.
            return socket.create_connection((address, port), timeout=timeout)
        except TimeoutError:
            problem = f"could not connect to {where} within {timeout:g} seconds"
        except ConnectionRefusedError:
            problem = f"{where} refused the connection (no SFTP server is listening there)"
        except OSError as exc:
            problem = f"could not connect to {where}: {exc.strerror or exc}"
    raise SftpError(problem)


def _handshake(transport: paramiko.Transport, where: str, timeout: float) -> tuple[str, str]:
    """The server key's fingerprint and type, once the key exchange has proved the server has it."""
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    # The banner and handshake timeouts above bound the wait in paramiko's own thread; this
    # one is only a backstop, generous so that it never races them on a loaded machine.
    backstop = 2 * timeout + 10
    try:
        transport.start_client(timeout=backstop)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if "banner" in str(exc):
            raise SftpError(
                f"{where} did not answer as an SSH server within {timeout:g} seconds"
            ) from None
        raise SftpError(f"the SSH handshake with {where} failed: {exc}") from None
    try:
        key = transport.get_remote_server_key()
    except paramiko.SSHException:  # start_client gave up waiting without an error
        raise SftpError(
            f"the SSH handshake with {where} did not finish within {backstop:g} seconds"
        ) from None
    return fingerprint(key), str(key.get_name())


def _authenticate(
    transport: paramiko.Transport,
    where: str,
    username: str,
    password: str | None,
    pkey: paramiko.PKey | None,
) -> None:
    """Sign in with the key when there is one, else with the password: one method only, since
    paramiko asks for the auth service again on every attempt and some servers hang up then."""
    if pkey is None and password is None:
        raise SftpError(f"the SFTP server {where} needs a password or a private key for {username}")
    given = "key" if pkey is not None else "password"
    try:
        if pkey is not None:
            transport.auth_publickey(username, pkey)
        else:
            transport.auth_password(username, password)
    except paramiko.AuthenticationException:
        pass
    except (paramiko.SSHException, EOFError, OSError):
        raise SftpError(f"the SFTP server {where} closed the connection while signing in") from None
    if not transport.is_authenticated():
        raise SftpError(
            f"the SFTP server {where} refused the user name {username!r} with the {given} given: "
            "check the credentials"
        )


def _choose(client: paramiko.SFTPClient, path: str, where: str) -> tuple[str, Any]:
    """The file to fetch and its attributes: the path itself, or the newest match of its glob."""
    folder, name = posixpath.split(path)
    if not _GLOB_CHARS.intersection(name):
        attrs = client.stat(path)
        if attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode):
            raise SftpError(f"{path} on {where} is a folder, not a file")
        return path, attrs
    candidates: list[tuple[int, str, Any]] = []
    for entry in client.listdir_attr(folder or "."):
        if not fnmatch.fnmatchcase(entry.filename, name):
            continue
        full = posixpath.join(folder, entry.filename)
        attrs = entry
        if attrs.st_mode is not None and stat.S_ISLNK(attrs.st_mode):
            try:
                attrs = client.stat(full)
            except OSError:
                continue  # a dangling link is no candidate
        if attrs.st_mode is None or stat.S_ISREG(attrs.st_mode):
            candidates.append((attrs.st_mtime or 0, entry.filename, attrs))
    if not candidates:
        raise SftpError(f"no file matches {name} in {folder or 'the home folder'} on {where}")
    _mtime, filename, attrs = max(candidates, key=lambda c: (c[0], c[1]))
    return posixpath.join(folder, filename), attrs


def _stream(client: paramiko.SFTPClient, path: str, size: int | None, sink: Sink) -> None:
    with client.open(path, "rb") as remote:
        if size:
            # Read ahead only what the sink may take: a preview asks for a few kilobytes.
            remote.prefetch(min(size, sink.reads_at_most), _PREFETCH_REQUESTS)
        while chunk := remote.read(_READ_SIZE):
            if not sink.write(chunk):
                return


def _file_problem(exc: OSError, path: str, where: str) -> str:
    if exc.errno == errno.ENOENT:
        return f"there is no file or folder {path} on the SFTP server {where}"
    if exc.errno == errno.EACCES:
        return f"permission denied reading {path} on the SFTP server {where}"
    return f"the SFTP server {where} could not read {path}: {exc.strerror or exc}"
