"""Backups of the whole database while it serves, scheduled ones, and verified restores."""
