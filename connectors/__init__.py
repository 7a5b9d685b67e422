"""Connectors: adapters that pull shared data into process steps (see README.md)."""
