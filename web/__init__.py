"""The web adapter (see README.md)."""
