"""Tongban's engine: definitions, runtime, human tasks, jobs, audit. No Flask, no adapters.

Import the front door with ``from engine.api import Engine``.
"""
