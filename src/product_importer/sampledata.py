"""Realistic catalogue files for trying the product, for tests and for benchmarks.

Rows look like what merchants import: a product name, a word SKU, a description of one to three
sentences. Some text is not ASCII (Crème, Größe, 北欧, €), some descriptions hold commas, quotes
and line breaks (so the CSV quotes them), and a share of rows repeat an earlier SKU in another
letter case (the importer treats those as one product; the last row wins).

Output is deterministic for a seed and streams: no row is remembered. A row's SKU is a pure
function of (seed, its index), so a repeat can pick any earlier index and rebuild that SKU
instead of keeping a list of every SKU issued; 5,000,000 rows need the memory of 50.

With `fields=N` a row also has the first N custom-field columns of `FIELD_COLUMNS` (price,
stock, tags, ...), headed by the field's key so an import maps them to fields of that key, and
written as merchants' files write them (`1,299.00`, `summer, sale`, `yes`). A row's values are a
pure function of (seed, its index): the same rows with and without them.
"""

from __future__ import annotations

import csv
import gzip
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Literal

Format = Literal["csv", "csv.gz"]
HEADER = ("name", "sku", "description")
DEFAULT_DUP_RATE = 0.03


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ADJECTIVES = _words(
    "Classic Modern Rustic Compact Deluxe Vintage Nordic Sturdy Slim Portable Ergonomic Foldable "
    "Handmade Premium Organic Recycled Waterproof Wireless Stackable Adjustable Minimalist "
    "Heavy-duty Lightweight Crème Über Café Señor Smørrebrød Naïve Jalapeño Façade"
)
MATERIALS = _words(
    "oak walnut birch bamboo steel brass copper cotton linen wool leather ceramic glass marble "
    "granite velvet rattan pine teak aluminium porcelain cast-iron stoneware"
)
PRODUCTS = _words(
    "chair table lamp desk shelf stool bench cabinet mirror rug cushion blanket vase mug bowl "
    "plate kettle teapot pan skillet knife clock frame basket hamper planter lantern sofa "
    "bookcase wardrobe dresser headboard sideboard trolley tray coaster candle holder"
)
SKU_WORDS = _words(
    "alpha amber arc atlas aurora basin beacon birch bolt brook cedar cinder cliff clover comet "
    "coral crest delta dune ember fern fjord flint forge frost glade granite harbor hazel helix "
    "heron indigo iris ivory jade juniper kestrel lagoon larch lumen maple marsh meadow mesa "
    "mint nova oak onyx orbit pebble pine prism quartz raven reef ridge river rowan sable sage "
    "shale sierra slate solar spruce stone summit tango thistle tide timber topaz tundra vale "
    "vega willow wren yarrow zephyr"
)
WORDS = _words(
    "able about above across add after again air all almost along also always amount and any "
    "appear area around art back base beautiful become before begin behind best better between "
    "big black blue board body book both bring build business care carry case center change "
    "choice clean clear close cold color come common comfort company cover craft create cut dark "
    "day deep design detail different dinner direction door down draw dry each early easy edge "
    "end enough even every everyday evening extra eye face family far fast feel few fill final "
    "find fine finish fire first fit floor food form free fresh friend front full garden gentle "
    "gift give glass good great green ground group guest half hand hard heat heavy help high "
    "hold home hot house idea inside item keep kind kitchen large last late light like line "
    "little live long look low made make many market matter may meal measure might mind minute "
    "modern moment morning most move much natural near need never new next nice night north "
    "office often old once open order other outside own page part pattern perfect piece place "
    "plain plan plant play point polish practical present pretty price quality quick quiet "
    "rather ready real reason rest rich right room round rule safe same season seat second "
    "set shape share short side simple size small smooth soft solid space special stand start "
    "stay still storage strong style summer surface table take texture thin through time today "
    "together top touch town travel true turn under use useful value view warm wash water way "
    "weight well white whole wide wind window winter with within wood work year yellow"
)
# Words and phrases that are not ASCII, as suppliers from many countries write them.
NON_ASCII = (
    "crème brûlée",
    "Größe L",
    "façade",
    "naïve",
    "jalapeño",
    "smørrebrød",
    "北欧スタイル",
    "€ 24,90",
    "\u2013",  # en dash
    "\u201cbest seller\u201d",
    "Ø 30 cm",
    "Łódź",
    "Ærø",
    "café",
    "Straße",
)
# Custom-field columns for `Options.fields`: (header = field key, field type).
FIELD_COLUMNS = (
    ("price", "decimal"),
    ("compare_at", "decimal"),
    ("stock", "integer"),
    ("weight", "decimal"),
    ("barcode", "text"),
    ("vendor", "text"),
    ("tags", "list"),
    ("launch", "date"),
    ("featured", "boolean"),
    ("image", "url"),
)
TAGS = _words(
    "summer winter spring autumn sale new bestseller eco gift outdoor indoor kids kitchen garden "
    "office vintage handmade limited clearance premium organic travel bath bedroom living dining "
    "storage lighting decor textiles tableware cookware furniture rugs bundle exclusive online "
    "imported local recycled vegan fairtrade compact family classic modern rustic nordic"
)
VENDOR_SUFFIXES = ("Goods", "Home", "Supply", "& Co", "Works")
_FIELD_SALT = 0x5F1E1D5
_EPOCH_ORDINAL = 735_599  # 2015-01-01


@dataclass(frozen=True)
class Options:
    rows: int
    seed: int = 1
    dup_rate: float = DEFAULT_DUP_RATE
    fields: int = 0  # custom-field columns, the first N of FIELD_COLUMNS

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError("rows must be 0 or more")
        if not 0 <= self.fields <= len(FIELD_COLUMNS):
            raise ValueError(f"fields must be 0 to {len(FIELD_COLUMNS)}")
        if not 0.0 <= self.dup_rate < 1.0:
            raise ValueError("dup_rate must be at least 0 and below 1")


def _mix(seed: int, index: int) -> int:
    """A 64-bit hash of (seed, index) (splitmix64): cheap, stable across runs and platforms."""
    value = (seed * 0x9E3779B97F4A7C15 + index + 1) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)


def sku_for(seed: int, index: int) -> str:
    """The SKU of the index-th new product: two words and the index, so never issued twice."""
    bits = _mix(seed, index)
    count = len(SKU_WORDS)
    words = (SKU_WORDS[bits % count], SKU_WORDS[(bits >> 16) % count])
    return f"{words[0]}-{words[1]}-{index:07d}"


def _recase(rng: random.Random, sku: str) -> str:
    """The same SKU in another letter case: upper, title, or a few letters flipped."""
    pick = rng.random()
    if pick < 0.34:
        return sku.upper()
    if pick < 0.67:
        return sku.title()
    letters = [i for i, char in enumerate(sku) if char.isalpha()]
    chars = list(sku)
    for i in rng.sample(letters, k=min(3, len(letters))):
        chars[i] = chars[i].swapcase()
    flipped = "".join(chars)
    return flipped if flipped != sku else sku.upper()


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(5, 12))
    if rng.random() < 0.25:
        words.insert(rng.randrange(len(words)), rng.choice(NON_ASCII))
    if rng.random() < 0.3:
        words[rng.randrange(len(words) - 1)] += ","
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


class _RowMaker:
    """Builds rows from one 64-bit draw each, picking from pools made once per seed; a few
    microseconds a row, so 500,000 rows take seconds."""

    POOL = 8192  # distinct sentences; a description joins one to three of them

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sentences = [_sentence(rng) for _ in range(self.POOL)]

    def name(self, bits: int) -> str:
        name = (
            f"{ADJECTIVES[bits % len(ADJECTIVES)]} {MATERIALS[(bits >> 8) % len(MATERIALS)]} "
            f"{PRODUCTS[(bits >> 16) % len(PRODUCTS)]}"
        )
        if (bits >> 24) % 10 == 0:
            name += f", set of {2 + (bits >> 28) % 5}"  # a comma inside a quoted field
        return name

    def description(self, bits: int) -> str:
        pool, size = self.sentences, self.POOL
        count = 1 + (bits >> 32) % 3
        picked = [pool[(bits >> (34 + 10 * i)) * 7 % size] for i in range(count)]
        special = (bits >> 60) % 16
        if special == 0:
            return "\n".join(picked)  # a line break inside a quoted field
        if special == 1:
            finish = MATERIALS[(bits >> 40) % len(MATERIALS)]
            return f'{picked[0]} Finish: "{finish}".'  # doubled quotes in the CSV
        return " ".join(picked)


def _decimal(cents: int) -> str:
    """A price as shops write it: 19.99, and from 1,000 on with a thousands separator."""
    whole = cents // 100
    return f"{whole:,}.{cents % 100:02d}" if whole >= 1000 else f"{whole}.{cents % 100:02d}"


def field_cells(seed: int, index: int, sku: str, count: int) -> tuple[str, ...]:
    """The first `count` custom-field cells (FIELD_COLUMNS) of the index-th row: a pure
    function of (seed, index), so they do not move the rows' own random draws."""
    one = _mix(seed ^ _FIELD_SALT, 3 * index)
    two = _mix(seed ^ _FIELD_SALT, 3 * index + 1)
    three = _mix(seed ^ _FIELD_SALT, 3 * index + 2)
    # 1.00 to 999.99; one in ten 1,000.00 to 9,999.99
    price = 100_000 + one % 900_000 if (one >> 60) % 10 == 0 else 100 + one % 99_900
    tags = [TAGS[(two >> (2 + 6 * i)) % len(TAGS)] for i in range(1 + two % 4)]
    vendor = SKU_WORDS[(one >> 40) % len(SKU_WORDS)].title()
    cells = (
        _decimal(price),
        _decimal(price + price * ((one >> 18) % 6) // 10),  # compare-at: up to 50% more
        str((one >> 24) % 501),  # stock 0 to 500
        f"{1 + (one >> 33) % 25}.{(one >> 48) % 1000:03d}",  # weight in kg, 3 places
        f"{three % 10**13:013d}",  # an EAN-13: leading zeros kept as text
        f"{vendor} {VENDOR_SUFFIXES[(one >> 56) % len(VENDOR_SUFFIXES)]}",
        ", ".join(dict.fromkeys(tags)),
        _date_text(_EPOCH_ORDINAL + (two >> 26) % 4383),  # 2015-01-01 to 2026-12-31
        "yes" if (two >> 40) % 10 == 0 else "no",
        # An image address as a shop exports it: a value to import, never fetched by the UI.
        f"https://shop.example.com/products/{sku.lower()}.jpg",
    )
    return cells[:count]


def _date_text(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def header(options: Options) -> tuple[str, ...]:
    return HEADER + tuple(key for key, _ in FIELD_COLUMNS[: options.fields])


def rows(options: Options) -> Iterator[tuple[str, ...]]:
    """Yield (name, sku, description, *field cells); about dup_rate of them repeat an earlier
    SKU re-cased."""
    rng = random.Random(options.seed)
    maker = _RowMaker(rng)
    issued = 0
    for index in range(options.rows):
        if issued and rng.random() < options.dup_rate:
            sku = _recase(rng, sku_for(options.seed, rng.randrange(issued)))
        else:
            sku = sku_for(options.seed, issued)
            issued += 1
        bits = rng.getrandbits(64)
        if options.fields:
            cells = field_cells(options.seed, index, sku, options.fields)
            yield maker.name(bits), sku, maker.description(bits), *cells
        else:
            yield maker.name(bits), sku, maker.description(bits)


def write(handle: IO[str], options: Options) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header(options))
    writer.writerows(rows(options))


@contextmanager
def _open(out: str, file_format: Format) -> Iterator[IO[str]]:
    if out == "-":
        if file_format == "csv.gz":
            with gzip.open(sys.stdout.buffer, "wt", encoding="utf-8", newline="") as zipped:
                yield zipped
        else:
            yield sys.stdout
        return
    if file_format == "csv.gz":
        with gzip.open(out, "wt", encoding="utf-8", newline="") as zipped:
            yield zipped
    else:
        with open(out, "w", encoding="utf-8", newline="") as plain:
            yield plain


def write_file(out: str | Path, options: Options, file_format: Format | None = None) -> Path:
    """Write a catalogue file; the format follows the name (.gz) unless given."""
    target = str(out)
    chosen: Format = file_format or ("csv.gz" if target.endswith(".gz") else "csv")
    with _open(target, chosen) as handle:
        write(handle, options)
    return Path(target)
