"""Benchmarks: each compares two ways side by side, in one run, on cached Phoenix data."""
