"""Benchmarks: commands that print a table (see docs/performance.md); never timed tests.

`uv run python -m bench.receiver` measures the webhook receiver against its baseline.
"""
