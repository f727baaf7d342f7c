"""Who did what, when, from which address."""
