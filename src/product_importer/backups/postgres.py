"""PostgreSQL: backups with `pg_dump --format=custom`, restores with `pg_restore`.

Backup: a REPEATABLE READ transaction locks every table (ACCESS SHARE), exports its snapshot
(`pg_export_snapshot()`), counts what the manifest names in it, and hands it to
`pg_dump --snapshot`: the dump and its manifest describe the same moment, a running import's
transaction is in both or in neither, and no table is renamed under the dump (`_pinned`). pg_dump's
output streams straight into the backup file. pg_dump holds ACCESS SHARE locks while it runs:
readers and writers carry on, but a statement wanting an exclusive lock (a delete-all's
TRUNCATE, a search rebuild's swap) waits for the dump, as with any pg_dump.

Restore: into a database without tables, `pg_restore --single-transaction` restores directly
(all or nothing). Over a database that holds a catalogue, the backup is restored into a scratch
database beside it, migrated forward there, and the two are swapped by renaming them in one
transaction: until that moment the configured database is untouched, and a failure drops the
scratch one. That needs the CREATEDB privilege and no other session on the database.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, cast

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from product_importer.backups import archive, inventory
from product_importer.backups.errors import BackupFailed, RestoreFailed, ToolMissing
from product_importer.backups.snapshots import Snapshot
from product_importer.db import Database

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install PostgreSQL's client tools, at the server's major version or newer "
    "(Debian and Ubuntu: apt-get install postgresql-client)"
)
LOCK_ATTEMPTS = 5
MAINTENANCE_DATABASES = ("postgres", "template1")
# Lines of a tool's error output kept in a message.
ERROR_LINES = 6


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} was not found on PATH: {INSTALL_HINT}.")
    return found


def connection_args(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string for the tools, and their environment: the password travels in
    PGPASSWORD, never on a command line other users can read."""
    params: dict[str, str] = {}
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    for key, part in (
        ("host", url.host),
        ("port", url.port),
        ("dbname", url.database),
        ("user", url.username),
    ):
        if part is not None:
            params[key] = str(part)
    params.pop("password", None)
    env = dict(os.environ)
    password = url.password or url.query.get("password")
    if password:
        env["PGPASSWORD"] = str(password if isinstance(password, str) else password[-1])
    return make_conninfo(**params), env


def _tail(output: IO[bytes]) -> str:
    output.seek(0)
    lines = output.read().decode("utf-8", "replace").strip().splitlines()
    return " / ".join(lines[-ERROR_LINES:]) or "no message"


@contextmanager
def _pinned(database: Database) -> Iterator[tuple[Connection, str]]:
    """A read-only REPEATABLE READ transaction and the id of its exported snapshot, holding
    ACCESS SHARE on every table from before that snapshot was taken.

    pg_dump reads table names in its snapshot but index and constraint definitions from the
    live catalogue, and locks each table only after it started: a table renamed in between (an
    import swapping in its rebuilt search table) comes out under one name with indexes under
    the other, and the dump does not restore. Locking first closes that window: DDL on any
    table waits until the dump is done, as it would wait for pg_dump's own locks."""
    for attempt in range(LOCK_ATTEMPTS):
        with database.engine.connect() as probe:
            names = sorted(inventory.table_names(probe))
        with database.engine.connect().execution_options(
            isolation_level="REPEATABLE READ"
        ) as connection:
            transaction = connection.begin()
            try:
                connection.execute(text("SET TRANSACTION READ ONLY"))
                if names:  # not a query: the snapshot is taken after, by the next statement
                    listed = ", ".join(_quote(name) for name in names)
                    connection.execute(text(f"LOCK TABLE {listed} IN ACCESS SHARE MODE"))
            except SQLAlchemyError as exc:
                transaction.rollback()
                dropped = isinstance(getattr(exc, "orig", None), psycopg.errors.UndefinedTable)
                if dropped and attempt + 1 < LOCK_ATTEMPTS:
                    continue  # a table went away between the listing and the lock
                raise BackupFailed(
                    f"Could not lock the tables to back up: {_reason(exc)}"
                ) from None
            try:
                snapshot_id = str(
                    connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                )
                yield connection, snapshot_id
            finally:
                transaction.rollback()  # read only: nothing to keep
            return


@contextmanager
def snapshot(database: Database, _workdir: Path) -> Iterator[Snapshot]:
    pg_dump = tool("pg_dump")
    conninfo, env = connection_args(database.engine.url)
    with _pinned(database) as (conn, snapshot_id), tempfile.TemporaryFile() as errors:
        tables = inventory.table_names(conn)
        scalar = inventory.scalar_of(conn)
        revision = inventory.revision(scalar, tables)
        contents = inventory.contents(scalar, tables)
        process = subprocess.Popen(
            [
                pg_dump,
                "--format=custom",
                f"--snapshot={snapshot_id}",
                "--no-password",
                f"--dbname={conninfo}",
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        assert process.stdout is not None
        try:
            stream = cast(BinaryIO, process.stdout)
            yield Snapshot(revision=revision, contents=contents, stream=stream)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            process.stdout.close()
        if process.wait() != 0:
            raise BackupFailed(f"pg_dump failed: {_tail(errors)}")


class PostgresRestore:
    def __init__(self, database: Database, *, has_tables: bool) -> None:
        self._database = database
        self._url = database.engine.url
        self._target = str(self._url.database)
        # Without tables the target itself is restored into; otherwise a scratch database.
        self._scratch = (
            f"{self._target[:40]}_restore_{secrets.token_hex(4)}" if has_tables else None
        )
        self._created = False
        self._dump: Path | None = None
        self._pg_restore = tool("pg_restore")

    def verify(self, path: Path, manifest: archive.Manifest, workdir: Path) -> None:
        dump = workdir / "database.pgdump"
        with dump.open("xb") as target:
            dump.chmod(0o600)
            archive.extract_payload(path, manifest, target)
        listing = subprocess.run(
            [self._pg_restore, "--list", str(dump)], capture_output=True, check=False
        )
        if listing.returncode != 0:
            message = listing.stderr.decode("utf-8", "replace").strip() or "no message"
            raise archive.DamagedBackup(
                f"{path} is damaged: pg_restore cannot read the dump inside ({message})."
            )
        # A comment on an extension (pg_trgm) can only be set by its owner, usually a superuser:
        # leave those out, with ownership and grants, so the app's own user can restore.
        keep = [
            line
            for line in listing.stdout.decode("utf-8", "replace").splitlines()
            if " COMMENT " not in line or " EXTENSION " not in line
        ]
        (workdir / "entries.list").write_text("\n".join(keep) + "\n")
        self._dump = dump

    def stage(self, workdir: Path) -> str:
        assert self._dump is not None
        staged_url = self._url
        if self._scratch is not None:
            self._create_scratch()
            staged_url = self._url.set(database=self._scratch)
        self._run_pg_restore(self._dump, workdir / "entries.list", staged_url)
        return staged_url.render_as_string(hide_password=False)

    def _create_scratch(self) -> None:
        assert self._scratch is not None
        engine = create_engine(self._url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                encoding, collate, ctype = connection.execute(
                    text(
                        "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
                        "FROM pg_database WHERE datname = current_database()"
                    )
                ).one()
                connection.execute(
                    text(
                        f"CREATE DATABASE {_quote(self._scratch)} TEMPLATE template0 "
                        f"ENCODING {_literal(encoding)} LC_COLLATE {_literal(collate)} "
                        f"LC_CTYPE {_literal(ctype)}"
                    )
                )
                self._created = True
        except SQLAlchemyError as exc:
            raise RestoreFailed(
                f"Replacing a PostgreSQL database restores the backup into a new database "
                f"first, and creating one failed ({_reason(exc)}). Grant the CREATEDB "
                f"privilege, or drop and create {self._target} empty and restore without "
                "--replace. The database was not changed."
            ) from None
        finally:
            engine.dispose()

    def _run_pg_restore(self, dump: Path, entries: Path, url: URL) -> None:
        conninfo, env = connection_args(url)
        with tempfile.TemporaryFile() as errors:
            done = subprocess.run(
                [
                    self._pg_restore,
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-owner",
                    "--no-privileges",
                    "--no-password",
                    f"--use-list={entries}",
                    f"--dbname={conninfo}",
                    str(dump),
                ],
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=env,
                check=False,
            )
            if done.returncode != 0:
                raise RestoreFailed(
                    f"pg_restore failed, and rolled back: {_tail(errors)}. "
                    "The database was not changed."
                )

    def swap_in(self) -> None:
        if self._scratch is None:
            return
        self._database.dispose()
        old = f"{self._target[:40]}_replaced_{secrets.token_hex(4)}"
        engine = self._maintenance_engine()
        try:
            with engine.connect() as connection, connection.begin():
                connection.execute(
                    text(f"ALTER DATABASE {_quote(self._target)} RENAME TO {_quote(old)}")
                )
                connection.execute(
                    text(f"ALTER DATABASE {_quote(self._scratch)} RENAME TO {_quote(self._target)}")
                )
        except SQLAlchemyError as exc:
            engine.dispose()
            raise RestoreFailed(
                f"The backup was restored and checked but could not take the place of "
                f"{self._target} ({_reason(exc)}): stop every server, worker and session using "
                "it, and restore again. The database was not changed."
            ) from None
        self._created = False  # it is the configured database now
        try:
            with engine.connect() as connection:
                autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.execute(text(f"DROP DATABASE {_quote(old)}"))
        except SQLAlchemyError as exc:
            log.warning("the replaced database %s is left to drop by hand (%s)", old, _reason(exc))
        finally:
            engine.dispose()

    def _maintenance_engine(self) -> Engine:
        """An engine on a database other than the target, which cannot rename itself."""
        for name in MAINTENANCE_DATABASES:
            engine = create_engine(self._url.set(database=name))
            try:
                with engine.connect():
                    return engine
            except SQLAlchemyError:
                engine.dispose()
        raise RestoreFailed(
            "Swapping in the restored database needs a connection to the "
            f"{MAINTENANCE_DATABASES[0]} database, which failed. The database was not changed."
        )

    def discard(self) -> None:
        if not self._created or self._scratch is None:
            return
        engine = create_engine(self._url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(
                    text(f"DROP DATABASE IF EXISTS {_quote(self._scratch)} WITH (FORCE)")
                )
        except SQLAlchemyError as exc:
            log.warning(
                "the scratch database %s is left to drop by hand (%s)", self._scratch, _reason(exc)
            )
        finally:
            engine.dispose()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _reason(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
