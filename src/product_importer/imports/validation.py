"""Row rules: what a valid product row is, and the exact reason when it is not.

This is the import's hot loop (run once per row of a 500,000-row file), so it is one plain
generator with locals bound up front, and no objects per row beyond the output tuple (and, for
a row with custom fields, the list of their JSON pieces). Each custom field column gets its
parser and its JSON key bound once; a column's values repeat (prices, stock counts, dates,
yes/no), so each column remembers the JSON of the values it has read, up to a bound, and a
repeated value costs one dictionary look-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from json.encoder import encode_basestring

from product_importer.catalog import field_types
from product_importer.catalog.export import restore_cell
from product_importer.catalog.field_types import FieldValueError
from product_importer.catalog.models import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    SKU_MAX_LENGTH,
)
from product_importer.imports.columns import Columns, FieldColumn

# (line, sku_key, sku, name, description, active, fields); active is None when the file has
# no value; fields is None when the row sets no custom field, else compact JSON of a merge
# patch: {key: stored value} and, with empty_cells=clear, {key: null} to unset.
StagedRow = tuple[int, str, str, str, str, bool | None, str | None]
RejectSink = Callable[[int, str, list[str]], None]

# What other systems write for "on sale" (Shopify status, WooCommerce, ERPs), any letter case.
ACTIVE_VALUES = {
    **dict.fromkeys(("true", "1", "yes", "y", "active", "published", "enabled", "visible"), True),
    **dict.fromkeys(
        ("false", "0", "no", "n", "draft", "archived", "unpublished", "disabled", "hidden"), False
    ),
}
ACTIVE_WORDS = (
    "true/false, yes/no, y/n, 1/0, active/draft/archived, published/unpublished, "
    "enabled/disabled or visible/hidden"
)
# Values remembered per column (their JSON), at most CACHED_IN_ALL over all columns, and the
# longest value remembered: enough for the prices, counts, dates and words of a catalogue, in
# under 10 MB however many columns a file has.
CACHED_VALUES = 8192
CACHED_IN_ALL = 40_000
CACHED_CHARS = 64
MAX_REASON = 500
# The same text as `db.compact_json`, with the encoder built once rather than per value.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# field_types' own test of an address (a test holds them equal).
URL_PATTERN = re.compile(r"^https?://[^\s/?#@]+(:\d{1,5})?([/?#]\S*)?$", re.IGNORECASE)

FieldEncoder = Callable[[str], str]
ValueJson = Callable[[str], str]


def _clip(value: str) -> str:
    """A value as `field_types` quotes it in its messages."""
    return repr(value[:40] + ("…" if len(value) > 40 else ""))


def field_reason(columns: Columns, index: int, value: str, error: FieldValueError) -> str:
    """Why the cell at `index` does not fit its field: column, field, value and what is wrong."""
    column = next(fc for fc in columns.fields if fc.index == index)
    message = str(error)
    value = restore_cell(value)
    if _clip(value) not in message:
        message = f"{_clip(value)} {message}"
    reason = f"Column {column.column[:60]!r} ({column.field.key}): {message}."
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def _decimal_json(separator: str, slow: ValueJson) -> ValueJson:
    grouping = "," if separator == "." else "."

    def encode(value: str) -> str:
        # Digits (grouped or not), then the separator and digits: no sign, no exponent.
        whole, point, fraction = value.partition(separator)
        if grouping in whole:
            whole = whole.replace(grouping, "")
        if not (value.isascii() and whole.isdigit() and len(whole) <= 15) or (
            point and not (fraction.isdigit() and len(fraction) <= 10)
        ):
            return slow(value)
        if whole[0] == "0":
            whole = whole.lstrip("0") or "0"
        if fraction:
            fraction = fraction.rstrip("0")
            if fraction:
                return '"' + whole + "." + fraction + '"'
        return '"' + whole + '"'

    return encode


def _integer_json(slow: ValueJson) -> ValueJson:
    def encode(value: str) -> str:
        if len(value) <= 18 and value.isascii() and value.isdigit():
            return str(int(value))
        return slow(value)

    return encode


def _text_json(slow: ValueJson) -> ValueJson:
    limit = field_types.TEXT_MAX_LENGTH
    quote = encode_basestring

    def encode(value: str) -> str:
        # Printable text has no control characters and no lone surrogates (what check_text
        # refuses), and no spaces at its ends but ASCII ones.
        if len(value) <= limit and value.isprintable() and value[0] != " " and value[-1] != " ":
            return quote(value)
        return slow(value)

    return encode


def _url_json(slow: ValueJson) -> ValueJson:
    limit = field_types.URL_MAX_LENGTH
    address = URL_PATTERN.match
    quote = encode_basestring

    def encode(value: str) -> str:
        if (
            len(value) <= limit
            and value.isprintable()
            and value[0] != " "
            and value[-1] != " "
            and address(value)
        ):
            return quote(value)
        return slow(value)

    return encode


def _date_json(slow: ValueJson) -> ValueJson:
    def encode(value: str) -> str:
        if (
            len(value) == 10
            and value[4] == "-"
            and value[7] == "-"
            and value.isascii()
            and value[:4].isdigit()
            and value[5:7].isdigit()
            and value[8:].isdigit()
        ):
            try:
                date(int(value[:4]), int(value[5:7]), int(value[8:]))
            except ValueError:
                return slow(value)  # not on the calendar: the long way says so
            return '"' + value + '"'
        return slow(value)

    return encode


def _list_json(slow: ValueJson) -> ValueJson:
    limit, item_limit = field_types.LIST_MAX_LENGTH, field_types.LIST_ITEM_MAX_LENGTH
    max_items = field_types.LIST_MAX_ITEMS
    quote = encode_basestring

    def encode(value: str) -> str:
        if len(value) > limit or not value.isprintable():
            return slow(value)
        kept: list[str] = []
        for item in value.split(","):
            item = item.strip()
            if item and item not in kept:
                if len(item) > item_limit:
                    return slow(value)
                kept.append(item)
        if len(kept) > max_items or sum(map(len, kept)) + 2 * len(kept) - 2 > limit:
            return slow(value)
        return "[" + ",".join(map(quote, kept)) + "]"

    return encode


def value_json(kind: str, choices: list[str] | None, decimal_separator: str) -> ValueJson:
    """A non-empty cell -> its stored value as JSON (`db.compact_json`), or FieldValueError.

    The value is `field_types.text_parser`'s; the common shapes of the busiest types (a plain
    or grouped number, printable text, an address, a date, a short list) are read and written
    directly, to the same JSON (a test holds them to it) in a fraction of the time. Everything
    else goes the long way."""
    parse = field_types.text_parser(kind, choices, decimal_separator)

    def slow(value: str) -> str:
        return _to_json(parse(value))

    if kind == "decimal":
        return _decimal_json(decimal_separator, slow)
    if kind == "integer":
        return _integer_json(slow)
    if kind == "text":
        return _text_json(slow)
    if kind == "list":
        return _list_json(slow)
    if kind == "url":
        return _url_json(slow)
    if kind == "date":
        return _date_json(slow)
    return slow


def field_encoder(
    column: FieldColumn, decimal_separator: str = ".", cached: int = CACHED_VALUES
) -> tuple[Callable[[str], str | None], FieldEncoder]:
    """(look-up, encode) for a column: `encode(raw)` (a stripped, non-empty cell) is
    `"key":value` as JSON or FieldValueError, and remembers the JSON of up to `cached`
    distinct short values, which `look-up(raw)` finds (None: not seen yet)."""
    spec = column.field
    choices = list(spec.choices) if spec.choices is not None else None
    to_json = value_json(spec.type, choices, decimal_separator)
    prefix = _to_json(spec.key) + ":"
    known: dict[str, str] = {}
    restore = restore_cell

    def encode(raw: str) -> str:
        # Our own export escapes formula-like cells (a negative number too): undo it.
        piece = prefix + to_json(restore(raw) if raw[0] == "'" else raw)
        if len(known) < cached and len(raw) <= CACHED_CHARS:
            known[raw] = piece
        return piece

    return known.get, encode


def normalise(
    rows: Iterable[tuple[int, list[str]]],
    columns: Columns,
    reject: RejectSink,
    decimal_separator: str = ".",
    empty_cells: str = "keep",
) -> Iterator[StagedRow]:
    """Yield one staged tuple per valid row; hand each invalid row to `reject` with a reason."""
    i_sku, i_name, i_desc, i_active = columns.sku, columns.name, columns.description, columns.active
    width = columns.width
    needed = (
        max(
            [i for i in (i_sku, i_name, i_desc, i_active) if i is not None]
            + [fc.index for fc in columns.fields]
        )
        + 1
    )
    # Custom fields: (cell index, look-up, encode, JSON of an empty cell with
    # empty_cells=clear, else ""), bound once per column.
    cached = min(CACHED_VALUES, CACHED_IN_ALL // max(len(columns.fields), 1))
    clear = empty_cells == "clear"
    custom = tuple(
        (
            fc.index,
            *field_encoder(fc, decimal_separator, cached),
            _to_json(fc.field.key) + ":null" if clear else "",
        )
        for fc in columns.fields
    )
    active_values = ACTIVE_VALUES
    sku_max, name_max, desc_max = SKU_MAX_LENGTH, NAME_MAX_LENGTH, DESCRIPTION_MAX_LENGTH
    restore = restore_cell

    for line, row in rows:
        count = len(row)
        if count != width:
            if count > width and any(cell.strip() for cell in row[width:]):
                reject(
                    line,
                    f"Row has {count} fields but the header has {width}; "
                    "the extra values would be lost (check quoting and delimiters).",
                    row,
                )
                continue
            if count < needed:
                row = row + [""] * (needed - count)
        sku = row[i_sku].strip()
        name = row[i_name].strip()
        # Our own export escapes formula-like cells with a leading apostrophe: undo it, so an
        # exported file imports back to the same catalogue.
        if sku[:1] == "'":
            sku = restore(sku)
        if name[:1] == "'":
            name = restore(name)
        if not sku:
            if not any(cell.strip() for cell in row):
                continue  # a row of empty cells, as spreadsheets leave at the end
            reject(line, "SKU is empty.", row)
            continue
        if not name:
            reject(line, "Name is empty.", row)
            continue
        description = row[i_desc].strip() if i_desc is not None else ""
        if description[:1] == "'":
            description = restore(description)
        if len(sku) > sku_max:
            reject(line, f"SKU is {len(sku)} characters; the limit is {sku_max}.", row)
            continue
        if len(name) > name_max:
            reject(line, f"Name is {len(name)} characters; the limit is {name_max}.", row)
            continue
        if len(description) > desc_max:
            reject(
                line,
                f"Description is {len(description)} characters; the limit is {desc_max}.",
                row,
            )
            continue
        if "\x00" in sku or "\x00" in name or "\x00" in description:
            reject(line, "Row contains a NUL character, which cannot be stored.", row)
            continue
        active: bool | None = None
        if i_active is not None:
            raw_active = row[i_active].strip()
            if raw_active:
                active = active_values.get(raw_active.lower())
                if active is None:
                    reject(
                        line,
                        f"Active must be {ACTIVE_WORDS}, not {raw_active[:40]!r}.",
                        row,
                    )
                    continue
        fields: str | None = None
        if custom:
            pieces: list[str] = []
            for index, remembered, encode, empty in custom:
                raw = row[index].strip()
                if raw:
                    piece = remembered(raw)
                    if piece is None:
                        try:
                            piece = encode(raw)
                        except FieldValueError as exc:
                            reject(line, field_reason(columns, index, raw, exc), row)
                            break
                    pieces.append(piece)
                elif empty:
                    pieces.append(empty)
            else:
                if pieces:
                    fields = "{" + ",".join(pieces) + "}"
                yield line, sku.casefold(), sku, name, description, active, fields
            continue
        yield line, sku.casefold(), sku, name, description, active, None
