"""Runnable examples: each ``python examples/NAME.py`` starts what it needs, runs for a few seconds and
exits 0 (the tests in ``tests/examples/`` run every one)."""
