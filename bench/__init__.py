"""Benchmarks. Every figure is a ratio to a baseline measured in the same run.

`python -m bench.run` runs them all; each module also runs alone (`python -m bench.bench_store`).
"""
