"""The three roles and their order: each role can do everything the one below it can."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"  # read everything, export
    editor = "editor"  # viewer + imports, product edits, bulk actions, undo
    admin = "admin"  # editor + delete-all, webhooks, users, tokens, system settings


_RANK = {Role.viewer: 0, Role.editor: 1, Role.admin: 2}


def at_least(have: Role, need: Role) -> bool:
    return _RANK[have] >= _RANK[need]


def lowest(*roles: Role) -> Role:
    """The least powerful of the roles (a token never outranks the user who owns it)."""
    return min(roles, key=_RANK.__getitem__)
