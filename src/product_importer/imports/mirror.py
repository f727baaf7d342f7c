"""Mirror mode: what an import does to the products its file does not list.

A supplier's full export imported every night should leave the catalogue as the file says,
including products that left it. With `missing` = "deactivate" or "delete", the catalogue's
products whose SKU key no row of the file names are deactivated or deleted inside the merge's
own transaction, before it writes anything else, and recorded in the import's change set: one
undo of the import gives the catalogue back exactly.

- **A rejected row still names its SKU.** A typo in a price must never delete a product, so the
  keys of rejected rows with a readable SKU are kept aside while the file is read (in a spill
  file: a file of a million rejected rows costs disk, not memory) and staged beside the
  import's rows (`import_seen`) when the merge runs.
- **The guard.** A file that leaves out more than `max_missing_percent` of the catalogue is
  more likely a broken export than a real change: the import is refused and nothing changes,
  unless `confirm_missing` says to go on. It is judged at the start of the merge transaction,
  under the merge's lock, by what would change (active products that would be deactivated, or
  products that would be deleted) against every product. An empty catalogue is never refused.
- **Set-based.** One anti-join of `products` against the staged keys (SQLite: a primary-key
  probe of `import_last` per product; PostgreSQL: a hash anti-join) fills a temporary table of
  the missing ids; the records, the search index and the products are then changed from it.
  Products already inactive are not touched, counted or recorded by "deactivate".

With `missing` = "keep" none of this runs: the import is what it was, query for query.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from product_importer.catalog.export import restore_cell
from product_importer.catalog.models import SKU_MAX_LENGTH
from product_importer.catalog.search import writing as search_writing
from product_importer.history.record_tables import RECORD_COLUMNS, RecordTarget
from product_importer.imports.mapping import MappingInvalid, parse_flag
from product_importer.imports.validation import RejectSink

MISSING_CHOICES = ("keep", "deactivate", "delete")
# Keys in ImportJob.options (only when not at their default), as the reading options are.
OPTION_NAMES = ("missing", "max_missing_percent", "confirm_missing")
FEED_ID = "feed_id"
# An import never changes a SKU key: no before_sku_key, as in the merge's own records.
_COLUMNS = RECORD_COLUMNS.replace("before_sku_key, ", "")
_SPILL_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class MirrorOptions:
    """What happens to the catalogue's products the file does not list, and the guard."""

    missing: str = "keep"  # "keep" | "deactivate" | "delete"
    max_missing_percent: float = 10.0
    confirm_missing: bool = False  # push one run through the guard

    def __post_init__(self) -> None:
        if self.missing not in MISSING_CHOICES:
            raise ValueError(f"missing must be one of {', '.join(MISSING_CHOICES)}")
        if not 0 <= self.max_missing_percent <= 100:
            raise ValueError("max_missing_percent must be from 0 to 100")

    @property
    def enabled(self) -> bool:
        return self.missing != "keep"

    def extra(self) -> dict[str, Any]:
        """The options that differ from their defaults, for ImportJob.options."""
        defaults = MirrorOptions()
        return {
            name: getattr(self, name)
            for name in OPTION_NAMES
            if getattr(self, name) != getattr(defaults, name)
        }

    @classmethod
    def stored(cls, options: dict[str, Any] | None) -> MirrorOptions:
        """The options kept in a job's `options` (absent keys: defaults)."""
        return cls(**{k: v for k, v in (options or {}).items() if k in OPTION_NAMES})


def parse_options(
    missing: str | None,
    max_missing_percent: str | float | None,
    confirm_missing: str | bool | None,
) -> MirrorOptions:
    """The options as a request or the command line gives them; MappingInvalid says what is
    wrong (a 422, or the CLI's usage error)."""
    chosen = (missing or "keep").strip().lower() or "keep"
    if chosen not in MISSING_CHOICES:
        raise MappingInvalid(
            f'missing must be "keep", "deactivate" or "delete", not {chosen[:20]!r}.'
        )
    limit = MirrorOptions.max_missing_percent
    if isinstance(max_missing_percent, str) and max_missing_percent.strip():
        text = max_missing_percent.strip()
        try:
            limit = float(text.removesuffix("%").strip())
        except ValueError:
            raise MappingInvalid(
                f"max_missing_percent must be a number from 0 to 100, not {text[:20]!r}."
            ) from None
    elif isinstance(max_missing_percent, int | float):
        limit = float(max_missing_percent)
    if not math.isfinite(limit) or not 0 <= limit <= 100:
        raise MappingInvalid(f"max_missing_percent must be from 0 to 100, not {limit:g}.")
    return MirrorOptions(chosen, limit, parse_flag("confirm_missing", confirm_missing))


def _percent(share: float, limit: float) -> str:
    """The share with enough decimals to show that it is over the limit (10.04 is not "10.0")."""
    for places in range(1, 5):
        shown = f"{share:.{places}f}"
        if float(shown) > limit:
            return shown
    return f"{share:.4f}"


def over_limit(options: MirrorOptions, missing: int, catalogue: int) -> str | None:
    """Why the guard stops this import, in words, or None if it does not."""
    if not catalogue or missing * 100 <= options.max_missing_percent * catalogue:
        return None
    share = missing * 100 / catalogue
    return (
        f"the file leaves out {missing:,} of {catalogue:,} products "
        f"({_percent(share, options.max_missing_percent)} %), more than the limit of "
        f"{options.max_missing_percent:g} %"
    )


class MirrorRefused(Exception):
    """The guard refused the import; nothing was changed. The message is the job's error."""

    def __init__(self, message: str, missing: int) -> None:
        super().__init__(message)
        self.missing = missing


class SeenKeys:
    """The SKU keys of rejected rows, spilled to a temporary file as they come (NUL-separated:
    a SKU holding NUL is rejected and can name no product)."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self.count = 0

    def sink(self, reject: RejectSink, sku_index: int) -> RejectSink:
        """`reject`, also keeping the SKU of each rejected row (read as the import reads it)."""

        def rejected(line: int, reason: str, row: list[str]) -> None:
            reject(line, reason, row)
            if sku_index < len(row):
                self.add(row[sku_index])

        return rejected

    def add(self, cell: str) -> None:
        sku = cell.strip()
        if sku[:1] == "'":
            sku = restore_cell(sku)
        if not sku or len(sku) > SKU_MAX_LENGTH or "\x00" in sku:
            return  # names no product
        try:
            data = sku.casefold().encode("utf-8")
        except UnicodeEncodeError:
            return  # a lone surrogate: no product holds it
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (kept until clear())
        self._file.write(data + b"\0")
        self.count += 1

    def __iter__(self) -> Iterator[str]:
        if self._file is None:
            return
        self._file.seek(0)
        rest = b""
        while chunk := self._file.read(_SPILL_CHUNK):
            *whole, rest = (rest + chunk).split(b"\0")
            for key in whole:
                yield key.decode("utf-8")

    def clear(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self.count = 0


class MirrorStep:
    """Mirror mode for one import: its options, the rejected rows' keys, and what it did (or,
    in a dry run, would do). The merger calls `apply` (or `count`) on its own connection."""

    def __init__(self, options: MirrorOptions) -> None:
        self.options = options
        self.seen = SeenKeys()
        self.missing = 0  # deactivated or deleted (or that would be)
        self.catalogue = 0  # products before the import
        self.refusal: str | None = None  # why the guard stops it, in a dry run

    @property
    def deletes(self) -> bool:
        return self.options.missing == "delete"

    @property
    def verb(self) -> str:
        return "delete" if self.deletes else "deactivate"

    def _missing(self, last: str, seen: str) -> str:
        """The condition on `p` that its product is missing from the file (and would change)."""
        where = f"NOT EXISTS (SELECT 1 FROM {last} AS s WHERE s.sku_key = p.sku_key)"  # noqa: S608
        if self.seen.count:
            where += f" AND NOT EXISTS (SELECT 1 FROM {seen} AS x WHERE x.sku_key = p.sku_key)"  # noqa: S608
        return where if self.deletes else f"p.active AND {where}"

    def count(self, dialect: str, db: Any) -> None:
        """A dry run: how many products it would change, and whether the guard would stop it.
        `db` is the merger's SQLite connection or PostgreSQL cursor, after de-duplication."""
        sql = _SQLite if dialect == "sqlite" else _Postgres
        sql.stage_seen(db, self.seen)
        where = self._missing(sql.LAST, sql.SEEN)
        self.missing = _one(db, f"SELECT count(*) FROM products AS p WHERE {where}")  # noqa: S608
        self.catalogue = _one(db, "SELECT count(*) FROM products")
        sql.drop_seen(db)
        reason = over_limit(self.options, self.missing, self.catalogue)
        if reason is not None and not self.options.confirm_missing:
            self.refusal = (
                f"A real import would be refused: {reason}. Run it with confirm_missing to "
                f"{self.verb} them."
            )

    def apply(self, dialect: str, db: Any, target: RecordTarget | None, now: Any) -> None:
        """In the merge's transaction, under its lock, before it writes a product: find the
        missing products, refuse (MirrorRefused, rolling the merge back) or record and
        deactivate or delete them. `now` is the merge's `updated_at` as the merger binds it."""
        sql = _SQLite if dialect == "sqlite" else _Postgres
        sql.stage_seen(db, self.seen)
        where = self._missing(sql.LAST, sql.SEEN)
        self.missing = sql.collect(db, where)
        self.catalogue = _one(db, "SELECT count(*) FROM products")
        reason = over_limit(self.options, self.missing, self.catalogue)
        if reason is not None and not self.options.confirm_missing:
            raise MirrorRefused(
                f"Refused: {reason}. Nothing was changed. Run it again with confirm_missing "
                f"to {self.verb} them.",
                self.missing,
            )
        if self.missing:
            if target is not None:
                db.execute(sql.record(target, self.deletes))
            for statement in sql.deletes if self.deletes else sql.deactivates:
                db.execute(statement, {"now": now})
        sql.drop_seen(db)
        db.execute(sql.DROP_MISSING)

    def marker_statements(
        self, job_id: int, change_id: int | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """For the merge's marker, in its transaction: the job's count, and the change set's
        (the merge has set its created and updated by then)."""
        params = {"missing": self.missing, "job_id": job_id, "change_id": change_id}
        statements = [("UPDATE import_jobs SET rows_missing = :missing WHERE id = :job_id", params)]
        if change_id is not None and self.missing:
            column = "deleted" if self.deletes else "updated"
            statements.append(
                (
                    f"UPDATE change_sets SET {column} = {column} + :missing "  # noqa: S608
                    "WHERE id = :change_id",
                    params,
                )
            )
        return statements

    def close(self) -> None:
        self.seen.clear()


def _one(db: Any, sql: str) -> int:
    return int(db.execute(sql).fetchone()[0])


def step_for(options: dict[str, Any] | None) -> MirrorStep | None:
    """The job's mirror step, or None when it keeps what the file does not list."""
    chosen = MirrorOptions.stored(options)
    return MirrorStep(chosen) if chosen.enabled else None


# --- per database ----------------------------------------------------------------------------


def _record_select(deletes: bool, false: str) -> str:
    """Records of the missing products as they are before the step: a deleted one whole (its
    fields too, which its undo re-creates), a deactivated one as a bulk deactivation records it
    (only `active` changes; name and description null, "unchanged")."""
    if deletes:
        return (
            "p.sku_key, p.id, 'deleted', p.sku, p.name, p.description, p.active, "
            "NULL, NULL, NULL, NULL, p.fields, NULL"
        )
    return (
        "p.sku_key, p.id, 'updated', p.sku, NULL, NULL, p.active, "
        f"NULL, NULL, NULL, {false}, NULL, NULL"
    )


class _SQLite:
    LAST, SEEN = "temp.import_last", "temp.import_seen"
    MISSING = "(SELECT id FROM temp.import_missing)"
    DROP_MISSING = "DROP TABLE IF EXISTS temp.import_missing"
    deactivates = (
        f"UPDATE products SET active = 0, updated_at = :now WHERE id IN {MISSING}",  # noqa: S608
    )
    deletes = (
        # List items go by trigger with the product.
        *search_writing.sqlite_forget(MISSING[1:-1]),
        f"DELETE FROM products WHERE id IN {MISSING}",  # noqa: S608
    )

    @staticmethod
    def stage_seen(db: Any, seen: SeenKeys) -> None:
        if not seen.count:
            return
        begin = not db.in_transaction  # a dry run counts outside a transaction
        if begin:
            db.execute("BEGIN")
        db.execute("DROP TABLE IF EXISTS temp.import_seen")
        db.execute("CREATE TEMP TABLE import_seen (sku_key TEXT PRIMARY KEY) WITHOUT ROWID")
        db.executemany("INSERT OR IGNORE INTO temp.import_seen VALUES (?)", ((k,) for k in seen))
        if begin:
            db.execute("COMMIT")

    @staticmethod
    def drop_seen(db: Any) -> None:
        db.execute("DROP TABLE IF EXISTS temp.import_seen")

    @classmethod
    def collect(cls, db: Any, where: str) -> int:
        db.execute(cls.DROP_MISSING)
        db.execute("CREATE TEMP TABLE import_missing (id INTEGER PRIMARY KEY)")
        return int(
            db.execute(
                f"INSERT INTO temp.import_missing SELECT p.id FROM products AS p WHERE {where}"  # noqa: S608
            ).rowcount
        )

    @classmethod
    def record(cls, target: RecordTarget, deletes: bool) -> str:
        return (
            f"{target.insert(_COLUMNS)}{_record_select(deletes, '0')} "
            f"FROM products AS p WHERE p.id IN {cls.MISSING}"
        )


class _Postgres:
    LAST, SEEN = "pg_temp.import_last", "pg_temp.import_seen"
    # Dropped with the merge's transaction however it ends.
    DROP_MISSING = "DROP TABLE IF EXISTS pg_temp.import_missing"
    deactivates = (
        "UPDATE products AS p SET active = false, updated_at = %(now)s "
        "FROM pg_temp.import_missing AS m WHERE p.id = m.id",
    )
    # The search rows go with their products (ON DELETE CASCADE).
    deletes = ("DELETE FROM products AS p USING pg_temp.import_missing AS m WHERE p.id = m.id",)

    @staticmethod
    def stage_seen(db: Any, seen: SeenKeys) -> None:
        if not seen.count:
            return
        db.execute("DROP TABLE IF EXISTS pg_temp.import_seen")
        db.execute("CREATE TEMP TABLE import_seen (sku_key text NOT NULL) ON COMMIT DROP")
        with db.copy("COPY pg_temp.import_seen (sku_key) FROM STDIN") as copy:
            for key in seen:
                copy.write_row((key,))
        db.execute("ANALYZE pg_temp.import_seen")

    @staticmethod
    def drop_seen(db: Any) -> None:
        db.execute("DROP TABLE IF EXISTS pg_temp.import_seen")

    @classmethod
    def collect(cls, db: Any, where: str) -> int:
        db.execute(cls.DROP_MISSING)
        db.execute(
            "CREATE TEMP TABLE import_missing ON COMMIT DROP AS "  # noqa: S608
            f"SELECT p.id FROM products AS p WHERE {where}"
        )
        missing = int(db.rowcount)
        db.execute("ANALYZE pg_temp.import_missing")
        return missing

    @staticmethod
    def record(target: RecordTarget, deletes: bool) -> str:
        return (
            f"{target.insert(_COLUMNS)}{_record_select(deletes, 'false')} "
            "FROM products AS p JOIN pg_temp.import_missing AS m ON m.id = p.id"
        )
