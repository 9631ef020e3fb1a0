"""Benchmarks: asyncjobs against what users would write instead (``python -m benchmarks``).

Not part of the test suite; see ``benchmarks/RESULTS.md`` for the scenarios and the latest run.
"""
