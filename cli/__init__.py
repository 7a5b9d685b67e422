"""The ``tongban`` command line: an adapter over ``engine.api.Engine``."""
