"""The `product-importer` command: serve, worker, migrate, backup and restore, import, sample
data, users and API tokens."""

from __future__ import annotations

import errno
import re
import socket
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from product_importer import migrate as migrations
from product_importer import sampledata, wiring
from product_importer.auth import service as auth_service
from product_importer.auth.roles import Role
from product_importer.db import Database, DatabaseConfigError, utcnow
from product_importer.observability import logs, metrics_dir
from product_importer.settings import Settings, redact_url

app = typer.Typer(
    help="Import, manage and publish a product catalogue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
user_app = typer.Typer(help="Manage users who sign in to the web UI.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens for automation.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
feed_app = typer.Typer(help="Scheduled imports from a URL or an SFTP server.", no_args_is_help=True)
app.add_typer(feed_app, name="feed")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        fail(f"invalid configuration: {problems}", 2)


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Connect, check the database answers, and apply pending migrations."""
    url = settings.resolved_database_url
    try:
        database = Database(url)
        database.ping()
        if migrate:
            migrations.upgrade(database)
    except DatabaseConfigError as exc:
        fail(str(exc), 2)
    except ModuleNotFoundError as exc:
        fail(f"DATABASE_URL needs a driver that is not installed ({exc.name}).", 2)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"cannot use the database at {redact_url(url)}: {reason}", 3)
    return database


def _check_distributed(settings: Settings, database: Database) -> None:
    """Workers on other machines cannot share a SQLite file: distributed mode is PostgreSQL."""
    if settings.distributed and database.dialect != "postgresql":
        fail("BROKER_URL (distributed mode) needs a PostgreSQL DATABASE_URL.", 2)


def _check_port_free(host: str, port: int, option: str = "--port") -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is already in use; choose another with {option}.", 4)
        fail(f"cannot listen on {host}:{port}: {exc.strerror}", 4)


def _announce_sign_in(database: Database) -> None:
    with database.session() as session:
        password = auth_service.bootstrap_admin(session)
    if password is not None:
        # Printed once, to the terminal only (never logged); not recoverable afterwards.
        typer.secho("\nFirst start: an administrator account was created.", bold=True)
        typer.echo("  username: admin")
        typer.echo(f"  password: {password}")
        typer.echo("This password is shown only now. Change it with:")
        typer.echo("  product-importer user set-password admin\n")


# How long uvicorn waits for a web process (--workers above 1) to answer before replacing it.
WEB_PROCESS_PING_TIMEOUT_SECONDS = 30


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Web processes (above 1: distributed mode only).")
    ] = 1,
) -> None:
    """Apply pending migrations and serve the web UI and API."""
    import uvicorn

    settings = load_settings()
    if workers > 1 and not settings.distributed:
        fail(
            "--workers above 1 needs distributed mode (BROKER_URL): in embedded mode the "
            "background work runs inside the one server process.",
            2,
        )
    if workers > 1:
        # Set before prometheus_client is first imported: the web processes add up their
        # numbers through files in this folder, so any of them answers /metrics for all.
        settings.ensure_home()
        metrics_dir.prepare(settings.home / "prometheus")
    from product_importer.app import create_app

    database = open_database(settings)
    _check_distributed(settings, database)
    _check_port_free(host, port)
    _announce_sign_in(database)
    shown_url = database.engine.url.render_as_string(hide_password=True)
    typer.echo(f"Serving on http://{host}:{port} (database: {shown_url})")
    # uvicorn applies it in each of its processes: its loggers share the app's format.
    log_config = logs.dict_config(settings.log_format, settings.log_level)
    if workers > 1:
        # Each process builds its own app, settings and engine from the same environment.
        database.dispose()
        uvicorn.run(
            "product_importer.app:create_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_config=log_config,
            # uvicorn replaces a web process that does not answer its ping within this time
            # (default 5 s). A process still importing the app on a busy machine (seen at 2
            # processes starting on 2 loaded cores) was killed and restarted over and over.
            timeout_worker_healthcheck=WEB_PROCESS_PING_TIMEOUT_SECONDS,
        )
        return
    uvicorn.run(create_app(settings, database), host=host, port=port, log_config=log_config)


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="Tasks run at once (threads).")
    ] = 4,
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to take work from.")
    ] = "imports,webhooks,default",
    metrics_port: Annotated[
        str | None,
        typer.Option(metavar="PORT", help="Serve Prometheus metrics on this port (default: off)."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface for --metrics-port.")
    ] = "127.0.0.1",
) -> None:
    """Run a Celery worker for distributed mode (needs BROKER_URL)."""
    from product_importer.tasks import celery_app

    try:
        metrics_address = metrics_dir.parse_address(metrics_host, metrics_port)
    except ValueError as exc:
        fail(str(exc), 2)
    settings = load_settings()
    if not settings.broker_url:
        fail("the worker needs a broker: set BROKER_URL (e.g. redis://127.0.0.1:6379/0).", 2)
    try:
        chosen = celery_app.parse_queues(queues)
    except ValueError as exc:
        fail(str(exc), 2)
    database = open_database(settings)
    _check_distributed(settings, database)
    try:
        celery_app.check_broker(settings)
    except celery_app.BrokerUnavailable as exc:
        fail(f"cannot reach the broker at {redact_url(settings.broker_url)}: {exc}", 3)
    if metrics_address is not None:
        _serve_worker_metrics(*metrics_address)
    shown = database.engine.url.render_as_string(hide_password=True)
    typer.echo(f"Worker for queues {', '.join(chosen)} (database: {shown})")
    raise typer.Exit(celery_app.run_worker(settings, database, chosen, concurrency))


def _serve_worker_metrics(host: str, port: int) -> None:
    from prometheus_client import start_http_server

    _check_port_free(host, port, "--metrics-port")
    try:
        start_http_server(port, addr=host)
    except OSError as exc:  # taken between the check and now
        fail(f"cannot serve metrics on {host}:{port}: {exc.strerror}", 4)
    typer.echo(f"Metrics on http://{host}:{port}/metrics")


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""
    settings = load_settings()
    database = open_database(settings, migrate=False)
    pending = migrations.pending(database)
    migrations.upgrade(database)
    typer.echo(f"Applied {len(pending)} migration(s); the database is up to date.")


@app.command()
def backup(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write to this new file instead of PRODUCT_IMPORTER_HOME/backups/.",
        ),
    ] = None,
) -> None:
    """Back up the database: a consistent copy, made while the server keeps serving."""
    from product_importer.backups import cli as backup_cli

    settings = load_settings()
    database = open_database(settings, migrate=False)
    try:
        typer.echo(backup_cli.back_up(settings, database, out))
    except backup_cli.CommandError as exc:
        fail(str(exc), exc.code)


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A backup file made by `backup`.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a database that holds data (asks first).")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="With --replace: do not ask (for scripts).")
    ] = False,
) -> None:
    """Restore a backup into the configured database: checked first, migrated forward."""
    from product_importer.backups import cli as backup_cli

    try:
        backup_cli.check_file(file)
    except backup_cli.CommandError as exc:
        fail(str(exc), exc.code)
    settings = load_settings()
    database = open_database(settings, migrate=False)
    try:
        typer.echo(backup_cli.restore(settings, database, file, replace=replace, yes=yes))
    except backup_cli.CommandError as exc:
        fail(str(exc), exc.code)


@app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A .csv or .csv.gz file, or a workbook (.xlsx, .xlsm, .xls, .ods).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and count; write nothing.")
    ] = False,
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="FIELD=COLUMN",
            help='Map one of our fields to the file\'s column, e.g. --map sku="Variant SKU"; '
            "repeat for name, description, active and custom fields by key "
            '(--map price="Variant Price").',
        ),
    ] = None,
    mapping_name: Annotated[
        str | None, typer.Option("--mapping", metavar="NAME", help="Use a saved mapping.")
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            help="Text encoding of a CSV file (utf-8, cp1252, ...) instead of detecting it."
        ),
    ] = None,
    sheet: Annotated[
        str | None, typer.Option(help="Workbook sheet: name or number from 1 (default: first).")
    ] = None,
    decimal_separator: Annotated[
        str | None,
        typer.Option(help='Decimal separator of custom field numbers: "." (default) or ",".'),
    ] = None,
    empty_cells: Annotated[
        str | None,
        typer.Option(
            help="keep (default): an empty cell leaves a custom field as it is; clear: unsets it."
        ),
    ] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="Rows with the same value here (Shopify's Handle) take the cells they leave "
            "empty from the group's first row.",
        ),
    ] = None,
    variant_names: Annotated[
        bool | None,
        typer.Option(
            "--variant-names/--no-variant-names",
            help="Add option values (Option1 Value ...) to each row's name.",
        ),
    ] = None,
    missing: Annotated[
        str | None,
        typer.Option(
            metavar="keep|deactivate|delete",
            help="Products the file does not list: keep them (default), or deactivate or "
            "delete them (mirror mode).",
        ),
    ] = None,
    max_missing_percent: Annotated[
        float | None,
        typer.Option(
            metavar="PERCENT",
            help="With --missing: refuse the import, changing nothing, if the file leaves out "
            "more than this share of the catalogue (0 to 100; default 10).",
        ),
    ] = None,
    confirm_missing: Annotated[
        bool, typer.Option("--confirm-missing", help="Let this import through that guard.")
    ] = False,
) -> None:
    """Import a CSV file or a workbook into the catalogue, with a progress bar."""
    from product_importer.imports import cli as import_cli
    from product_importer.imports.columns import FileFormatError
    from product_importer.imports.mapping import HeaderMismatch

    settings = load_settings()
    database = open_database(settings)
    try:
        options = import_cli.read_options(
            database,
            maps or [],
            mapping_name,
            encoding,
            sheet,
            decimal_separator,
            empty_cells,
            group_by,
            variant_names,
        )
        mirror = import_cli.mirror_options(missing, max_missing_percent, confirm_missing)
        job = import_cli.run(settings, database, file, dry_run, options, mirror)
    except import_cli.OptionError as exc:
        fail(str(exc), 2)
    except HeaderMismatch as exc:
        fail(f"{file.name}: {import_cli.mismatch_message(database, exc)}", 2)
    except FileFormatError as exc:
        fail(f"{file.name}: {exc}", 2)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", 2)
    typer.echo(import_cli.summary(job))
    if job.status != "completed":
        raise typer.Exit(1)


@feed_app.command("list")
def feed_list() -> None:
    """The feeds: schedule, next run, last outcome, mirror mode."""
    from product_importer.feeds import cli as feed_cli

    settings = load_settings()
    typer.echo(feed_cli.listing(settings, open_database(settings)))


@feed_app.command("run")
def feed_run(
    feed: Annotated[str, typer.Argument(help="The feed's name or id.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
    confirm_missing: Annotated[
        bool, typer.Option("--confirm-missing", help="Let this run through the mirror guard.")
    ] = False,
) -> None:
    """Fetch a feed's file and import it here, now. Exits 1 unless imported or unchanged."""
    from product_importer.feeds import cli as feed_cli

    settings = load_settings()
    database = open_database(settings)
    try:
        run = feed_cli.run(settings, database, feed, dry_run, confirm_missing)
    except feed_cli.CommandError as exc:
        fail(str(exc), exc.code)
    typer.echo(feed_cli.summary(run))
    if run.status not in ("imported", "unchanged"):
        raise typer.Exit(1)


class SampleFormat(StrEnum):
    csv = "csv"
    csv_gz = "csv.gz"


@app.command("sample-data")
def sample_data(
    out: Annotated[
        str, typer.Option("--out", help="File to write (.csv or .csv.gz), or - for stdout.")
    ],
    rows: Annotated[int, typer.Option(min=0, max=1_000_000_000, help="Data rows.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same file.")] = 1,
    dup_rate: Annotated[
        float,
        typer.Option(
            "--dup-rate", help="Share of rows repeating an earlier SKU in another letter case."
        ),
    ] = sampledata.DEFAULT_DUP_RATE,
    file_format: Annotated[
        SampleFormat | None,
        typer.Option("--format", help="csv or csv.gz (default: from the file name)."),
    ] = None,
) -> None:
    """Write a realistic catalogue CSV to try an import with (deterministic for a seed)."""
    if not 0.0 <= dup_rate < 1.0:
        fail("--dup-rate must be at least 0 and below 1, e.g. 0.03", 2)
    target = Path(out)
    if out != "-" and target.is_dir():
        fail(f"--out {out} is a folder; name a file", 2)
    if out != "-" and not target.parent.is_dir():
        fail(f"--out {out}: the folder {target.parent} does not exist", 2)
    started = time.monotonic()
    options = sampledata.Options(rows=rows, seed=seed, dup_rate=dup_rate)
    try:
        sampledata.write_file(out, options, file_format.value if file_format else None)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", 2)
    if out != "-":
        size_mb = target.stat().st_size / 1_000_000
        seconds = time.monotonic() - started
        typer.echo(f"Wrote {rows:,} rows to {out} ({size_mb:.1f} MB) in {seconds:.1f} s.")


NewPassword = Annotated[
    str,
    typer.Option(prompt=True, confirmation_prompt=True, hide_input=True, help="Password."),
]


def _change_users(change: Callable[[Session], object], done: str) -> None:
    """Run one change to users in its own unit of work; rule violations exit 2 with the reason."""
    database = open_database(load_settings())
    try:
        with database.session() as session:
            change(session)
    except auth_service.AuthError as exc:
        fail(str(exc), 2)
    typer.echo(done)


RoleOption = Annotated[
    Role,
    typer.Option(
        "--role",
        case_sensitive=False,
        help="viewer (read, export), editor (+ imports, edits) or admin (everything).",
    ),
]


@user_app.command("create")
def user_create(username: str, password: NewPassword, role: RoleOption = Role.admin) -> None:
    """Create a user who can sign in to the web UI (an admin unless --role says otherwise)."""
    _change_users(
        lambda session: auth_service.create_user(session, username, password, role),
        f"User '{username.strip()}' created ({role.value}).",
    )


@user_app.command("set-password")
def user_set_password(username: str, password: NewPassword) -> None:
    """Set a user's password."""
    _change_users(
        lambda session: auth_service.set_password(session, username, password),
        f"Password for '{username.strip()}' changed.",
    )


_DURATION = re.compile(r"^([1-9][0-9]{0,5})([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`90m`, `12h`, `30d` or `2w` (at most 10 years)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter("write a whole number and a unit: 90m, 12h, 30d or 2w")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > 3650 * 86400:
        raise typer.BadParameter("at most 10 years (3650d)")
    return timedelta(seconds=seconds)


@token_app.command("create")
def token_create(
    name: str,
    role: RoleOption = Role.admin,
    expires_in: Annotated[
        str | None,
        typer.Option(help="Stop working after this long: 90m, 12h, 30d or 2w. Default: never."),
    ] = None,
) -> None:
    """Create an API token and print it (it is shown only once)."""
    expires_at = utcnow() + parse_duration(expires_in) if expires_in is not None else None
    database = open_database(load_settings())
    try:
        with database.session() as session:
            token, clear = auth_service.create_token(
                session, name, role=role, expires_at=expires_at
            )
            token_id = token.id
    except auth_service.AuthError as exc:
        fail(str(exc), 2)
    until = f", expires {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
    typer.echo(
        f"Token {token_id} '{name.strip()}' created ({role.value}{until}). It is shown only now:",
        err=True,
    )
    typer.echo(clear)


@token_app.command("list")
def token_list() -> None:
    """List API tokens (never their values)."""
    database = open_database(load_settings())
    with database.session() as session:
        tokens = auth_service.list_tokens(session)
    if not tokens:
        typer.echo("No API tokens.")
    now = utcnow()
    for token in tokens:
        state = "revoked" if token.revoked_at else "active"
        if state == "active" and token.expires_at is not None and token.expires_at <= now:
            state = "expired"
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        typer.echo(
            f"{token.id:>4}  {token.prefix}…  {state:<7}  {token.role:<6}  last used {used}  "
            f"{token.name}"
        )


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Revoke an API token by id."""
    database = open_database(load_settings())
    try:
        with database.session() as session:
            auth_service.revoke_token(session, token_id)
    except auth_service.AuthError as exc:
        fail(str(exc), 2)
    typer.echo(f"Token {token_id} revoked.")


def _configure_logging() -> None:
    """Logs in the configured format from the first line on; a bad setting is reported by the
    command itself (exit 2), in the default format meanwhile."""
    try:
        settings = Settings()
    except ValidationError:
        logs.configure()
    else:
        logs.configure(settings.log_format, settings.log_level)


def main() -> None:
    wiring.connect()
    _configure_logging()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
