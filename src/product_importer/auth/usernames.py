"""When two user names are the same name: compared after Unicode NFKC, case folding and a
confusables skeleton, so `Admin`, a fullwidth `ADMIN` and `admin` spelt with a Cyrillic `a`
(U+0430) all collide with `admin`.

The skeleton follows Unicode's UTS #39: every character is replaced by a fixed member of its
class of look-alikes, from the confusables table that the `confusable-homoglyphs` package ships
(`confusables.json`, generated from Unicode's `confusables.txt`). That table lists each
look-alike pair both ways, so the classes are found by joining the pairs; a character whose
look-alike is a sequence (`m` and `rn`) is replaced by that sequence.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from functools import cache
from importlib.resources import files


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@cache
def _table() -> dict[str, str]:
    pairs: dict[str, list[dict[str, str]]] = json.loads(
        files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8")
    )
    parent: dict[str, str] = {}

    def root(char: str) -> str:
        while parent.get(char, char) != char:
            char = parent[char]
        return char

    sequences: dict[str, str] = {}
    for char, alikes in pairs.items():
        if len(char) != 1:
            continue  # a sequence is only ever the target of a single character
        for alike in alikes:
            other = alike["c"].strip("\u200e")  # the table marks right-to-left letters
            if len(other) == 1:
                first, second = sorted((root(char), root(other)))
                parent[second] = first  # the smallest code point stands for the class
            elif other:
                sequences[char] = other
    table = {char: root(char) for char in parent}
    for char, sequence in sequences.items():
        table[char] = "".join(root(part) for part in sequence)
    return table


def skeleton(username: str) -> str:
    """The form two names share when a reader could take one for the other."""
    table = _table()
    folded = _fold(username.strip())
    return _fold("".join(table.get(char, char) for char in folded))


def key(username: str) -> str:
    """What the unique `users.username_key` holds: a fixed-length digest of the skeleton."""
    return hashlib.sha256(skeleton(username).encode()).hexdigest()
