"""Benchmarks of the registrar, each next to a reference measured in the same run.

Run `python -m bench --help`; `make bench` writes bench/results.json and BENCHMARKS.md.
"""
