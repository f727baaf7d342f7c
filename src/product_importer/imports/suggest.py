"""Suggesting a mapping for a header we do not know: synonyms, then a fuzzy match.

Each field has a list of synonyms, most specific first (they are also the README's list). A column
matches a synonym exactly after normalising both (case-folded, accents kept, every run of
punctuation or spaces made one space), or closely enough by rapidfuzz's ratio on the normalised
text without spaces (typos, `ProductName`, `Item-Code`). The best (field, column) pairs are taken
greedily: exact before fuzzy, then the earlier synonym, so `Variant SKU` beats `Handle` for sku.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz import fuzz

SYNONYMS: dict[str, tuple[str, ...]] = {
    "sku": (
        "sku",
        "variant sku",
        "item code",
        "product code",
        "article number",
        "item number",
        "part number",
        "artikelnummer",
        "artikel nr",
        "référence",
        "reference",
        "ref",
        "código",
        "codice articolo",
        "handle",
    ),
    "name": (
        "name",
        "title",
        "product name",
        "item name",
        "product title",
        "bezeichnung",
        "titel",
        "artikelname",
        "produktname",
        "nom",
        "nom du produit",
        "nombre",
        "nome",
    ),
    "description": (
        "description",
        "body (html)",
        "long description",
        "product description",
        "beschreibung",
        "produktbeschreibung",
        "descriptif",
        "descripción",
        "descrizione",
        "body",
    ),
    "active": (
        "active",
        "status",
        "published",
        "enabled",
        "visible",
        "aktiv",
        "actif",
        "activo",
        "attivo",
    ),
}
FUZZY_CUTOFF = 88.0
_PUNCTUATION = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    return _PUNCTUATION.sub(" ", text.strip().lstrip("\ufeff").casefold()).strip()


def _score(column: str, synonyms: Sequence[str]) -> tuple[float, int] | None:
    """(similarity, -rank of the synonym) of the best synonym for this column, if any."""
    plain = normalise(column)
    if not plain:
        return None
    squeezed = plain.replace(" ", "")
    best: tuple[float, int] | None = None
    for rank, synonym in enumerate(synonyms):
        wanted = normalise(synonym)
        if plain == wanted:
            score = 100.0
        elif len(squeezed) >= 4:
            score = fuzz.ratio(squeezed, wanted.replace(" ", ""), score_cutoff=FUZZY_CUTOFF)
            if score == 100.0:
                score = 99.0  # same letters, other spacing: just below an exact match
        else:
            continue
        if score and (best is None or (score, -rank) > best):
            best = (score, -rank)
    return best


def suggest(header: Sequence[str]) -> dict[str, str]:
    """A mapping of our fields to this header's columns; fields with no likely column are left
    out (so sku or name may be missing, and the person chooses)."""
    candidates: list[tuple[float, int, int, str, str]] = []
    for index, column in enumerate(header):
        for field, synonyms in SYNONYMS.items():
            score = _score(column, synonyms)
            if score is not None:
                candidates.append((score[0], score[1], -index, field, column.strip()))
    candidates.sort(reverse=True)
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for *_order, field, column in candidates:
        if field in mapping or normalise(column) in taken:
            continue
        mapping[field] = column
        taken.add(normalise(column))
    return {field: mapping[field] for field in SYNONYMS if field in mapping}
