"""Benchmark scenarios. Run with ``make bench`` or ``python -m bench``."""
