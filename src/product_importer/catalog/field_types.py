"""Custom field types: what each accepts, from a file's text or from JSON, and the one stored
form of every value.

Stored values (in `products.fields`, a JSON object) are what the API shows: text, url, choice
and date as strings (dates `YYYY-MM-DD`, so text order is date order), integer as a JSON
number, decimal as a string in canonical form (exact, never binary floating point: no client
loses precision), boolean as true/false, list as an array of strings. One stored form means
"unchanged" is a plain comparison, in Python and in SQL.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

TYPES = ("text", "integer", "decimal", "boolean", "date", "url", "list", "choice")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# The product's own attributes (a mapping or an export header could not tell them apart).
RESERVED_KEYS = frozenset(
    {"id", "sku", "sku_key", "name", "description", "active", "created_at", "updated_at"}
    | {"fields"}
)
MAX_FIELDS = 500
LABEL_MAX_LENGTH = 100
TEXT_MAX_LENGTH = 2000
URL_MAX_LENGTH = 2048
CHOICE_MAX_LENGTH = 200
MAX_CHOICES = 500
LIST_MAX_ITEMS = 100
LIST_ITEM_MAX_LENGTH = 200
LIST_MAX_LENGTH = 2000  # characters, items joined with ", "
INTEGER_MIN, INTEGER_MAX = -(2**63), 2**63 - 1
DECIMAL_MAX_DIGITS = 30
DECIMAL_MAX_PLACES = 10

# What other systems write for yes and no (Shopify, WooCommerce, ERPs), any letter case; the
# same words `active` takes.
BOOLEAN_VALUES = {
    **dict.fromkeys(("true", "1", "yes", "y", "active", "published", "enabled", "visible"), True),
    **dict.fromkeys(
        ("false", "0", "no", "n", "draft", "archived", "unpublished", "disabled", "hidden"), False
    ),
}
BOOLEAN_WORDS = (
    "true/false, yes/no, y/n, 1/0, active/draft/archived, published/unpublished, "
    "enabled/disabled or visible/hidden"
)
DECIMAL_SEPARATORS = (".", ",")

_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_URL = re.compile(r"^https?://[^\s/?#@]+(:\d{1,5})?([/?#]\S*)?$", re.IGNORECASE)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?)?$")


class FieldValueError(ValueError):
    """A value the field's type does not take; the message says why, for a person."""


def _clip(value: str) -> str:
    return repr(value[:40] + ("…" if len(value) > 40 else ""))


def check_text(value: str, max_length: int, *, multi_line: bool = False) -> str:
    if len(value) > max_length:
        raise FieldValueError(f"is {len(value)} characters; the limit is {max_length}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldValueError("must be valid Unicode text (no lone surrogates)") from None
    allowed = "\t\n\r" if multi_line else ""
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in allowed:
            raise FieldValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return value


# --- canonical forms ---------------------------------------------------------------------


def canonical_decimal(number: Decimal) -> str:
    """The one spelling of a decimal: no exponent, no trailing zeros after the point."""
    if not number.is_finite():
        raise FieldValueError("must be a finite number")
    digits = len(number.as_tuple().digits)
    places = -int(number.as_tuple().exponent)
    if digits - max(places, 0) > DECIMAL_MAX_DIGITS - DECIMAL_MAX_PLACES:
        raise FieldValueError(
            f"is too large (at most {DECIMAL_MAX_DIGITS - DECIMAL_MAX_PLACES} digits before "
            "the point)"
        )
    if places > DECIMAL_MAX_PLACES:
        stripped = number.normalize()
        if -int(stripped.as_tuple().exponent) > DECIMAL_MAX_PLACES:
            raise FieldValueError(f"has more than {DECIMAL_MAX_PLACES} decimal places")
        number = stripped
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", "+0", ""):
        text = "0"
    return text


def _decimal_from_text(raw: str, separator: str) -> str:
    value = raw.strip().replace(" ", "").replace("\u00a0", "")
    # With ",": 1.299,00 -> 1299.00, the point groups thousands and the comma is the fraction.
    comma = separator == ","
    value = value.replace(".", "").replace(",", ".") if comma else value.replace(",", "")
    if not _PLAIN_NUMBER.match(value):
        raise FieldValueError(f"{_clip(raw)} is not a number")
    try:
        return canonical_decimal(Decimal(value))
    except InvalidOperation:
        raise FieldValueError(f"{_clip(raw)} is not a number") from None


def _integer(value: int) -> int:
    if not INTEGER_MIN <= value <= INTEGER_MAX:
        raise FieldValueError("is outside the 64-bit integer range")
    return value


def _integer_from_text(raw: str, separator: str) -> int:
    decimal = Decimal(_decimal_from_text(raw, separator))
    if decimal != decimal.to_integral_value():
        raise FieldValueError(f"{_clip(raw)} is not a whole number")
    return _integer(int(decimal))


def _date_from_text(raw: str) -> str:
    match = _DATE.match(raw.strip())
    if not match:
        raise FieldValueError(f"{_clip(raw)} is not a date (YYYY-MM-DD)")
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError:
        raise FieldValueError(f"{_clip(raw)} is not a date on the calendar") from None


def _url(raw: str) -> str:
    value = raw.strip()
    check_text(value, URL_MAX_LENGTH)
    if not _URL.match(value):
        raise FieldValueError(f"{_clip(raw)} is not an http:// or https:// address")
    return value


def _list(items: list[str]) -> list[str]:
    kept: list[str] = []
    for item in items:
        item = check_text(item.strip(), LIST_ITEM_MAX_LENGTH)
        if item and item not in kept:
            kept.append(item)
    if len(kept) > LIST_MAX_ITEMS:
        raise FieldValueError(f"has {len(kept)} items; the limit is {LIST_MAX_ITEMS}")
    if sum(len(item) for item in kept) + 2 * max(len(kept) - 1, 0) > LIST_MAX_LENGTH:
        raise FieldValueError(f"is longer than {LIST_MAX_LENGTH} characters in all")
    return kept


def _choice(raw: str, choices: list[str]) -> str:
    value = raw.strip()
    folded = value.casefold()
    for choice in choices:
        if choice.casefold() == folded:
            return choice
    shown = ", ".join(choices[:10]) + (", …" if len(choices) > 10 else "")
    raise FieldValueError(f"{_clip(raw)} is not one of the choices ({shown})")


def _boolean_from_text(raw: str) -> bool:
    value = BOOLEAN_VALUES.get(raw.strip().lower())
    if value is None:
        raise FieldValueError(f"must be {BOOLEAN_WORDS}, not {_clip(raw)}")
    return value


# --- from a file's cell ------------------------------------------------------------------


def from_text(
    kind: str, raw: str, choices: list[str] | None = None, decimal_separator: str = "."
) -> Any:
    """The stored value of a non-empty cell, or FieldValueError saying why it is not one."""
    if kind == "text":
        return check_text(raw.strip(), TEXT_MAX_LENGTH, multi_line=True)
    if kind == "decimal":
        return _decimal_from_text(raw, decimal_separator)
    if kind == "integer":
        return _integer_from_text(raw, decimal_separator)
    if kind == "boolean":
        return _boolean_from_text(raw)
    if kind == "date":
        return _date_from_text(raw)
    if kind == "url":
        return _url(raw)
    if kind == "list":
        if len(raw) > LIST_MAX_LENGTH * 2:
            raise FieldValueError(f"is {len(raw)} characters; the limit is {LIST_MAX_LENGTH}")
        return _list(raw.split(","))
    if kind == "choice":
        return _choice(raw, choices or [])
    raise FieldValueError(f"unknown type {kind!r}")


def text_parser(
    kind: str, choices: list[str] | None = None, decimal_separator: str = "."
) -> Callable[[str], Any]:
    """`from_text` with its type bound, for the import's per-row loop."""
    return lambda raw: from_text(kind, raw, choices, decimal_separator)


# --- from JSON (the API) -----------------------------------------------------------------


def from_json(kind: str, value: Any, choices: list[str] | None = None) -> Any:
    """The stored value of a JSON value the API received (not null), or FieldValueError."""
    if kind in ("text", "url", "choice", "date") and not isinstance(value, str):
        raise FieldValueError("must be a string")
    if kind == "text":
        return check_text(value, TEXT_MAX_LENGTH, multi_line=True)
    if kind == "url":
        return _url(value)
    if kind == "choice":
        return _choice(value, choices or [])
    if kind == "date":
        return _date_from_text(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise FieldValueError("must be true or false")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldValueError("must be a whole number")
        return _integer(value)
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldValueError('must be a number, best given as a string ("19.99")')
        # A float is taken by its shortest spelling, which is what the client wrote.
        return _decimal_from_text(repr(value) if isinstance(value, float) else str(value), ".")
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise FieldValueError("must be a list of strings")
        return _list(value)
    raise FieldValueError(f"unknown type {kind!r}")


# --- shown in a file (export) and converted between types --------------------------------


def to_text(value: Any) -> str:
    """A stored value as a cell: what `from_text` reads back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def convert(value: Any, kind: str, choices: list[str] | None = None) -> Any:
    """A stored value of one type as another (a field's type change), or FieldValueError."""
    return from_text(kind, to_text(value), choices)


# --- a type guessed from a sample of a column ----------------------------------------------

_LIST_NAMES = frozenset({"tags", "tag", "categories", "category_list", "keywords", "collections"})


def infer(header: str, samples: list[str]) -> str:
    """The type of a column from its header and a sample of its non-empty cells: whole
    numbers -> integer, numbers with a fraction -> decimal, yes/no words -> boolean, ISO dates
    -> date, http(s) addresses -> url, else text; a name like `Tags` -> list."""
    words = re.sub(r"[^a-z]+", " ", header.lower()).split()
    if words and (words[-1] in _LIST_NAMES or "tags" in words):
        return "list"
    values = [sample.strip() for sample in samples if sample.strip()]
    if not values:
        return "text"

    def all_parse(kind: str) -> bool:
        try:
            for sample in values:
                from_text(kind, sample)
        except FieldValueError:
            return False
        return True

    if all(_PLAIN_NUMBER.match(value.replace(",", "")) for value in values):
        return (
            "integer"
            if all_parse("integer") and not any("." in v for v in values)
            else ("decimal" if all_parse("decimal") else "text")
        )
    # 0/1 columns are numbers above; words only here.
    if all(value.lower() in BOOLEAN_VALUES for value in values):
        return "boolean"
    if all_parse("date"):
        return "date"
    if all(_URL.match(value) for value in values):
        return "url"
    return "text"


def suggest_key(header: str) -> str:
    """A field key from a column header: `Variant Price` -> `variant_price`."""
    folded = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode().lower()
    key = re.sub(r"[^a-z0-9]+", "_", folded).strip("_")[:63]
    if not key or not key[0].isalpha():
        key = ("field_" + key)[:63].rstrip("_")
    if key in RESERVED_KEYS:
        key = f"{key}_value"
    return key
