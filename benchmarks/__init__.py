"""Benchmarks behind BENCHMARKS.md. Not tests: they report ratios measured side by side."""
