"""Benchmarks of bankrecon at bank scale: ``./bench/run --help`` (README.md beside this file)."""
