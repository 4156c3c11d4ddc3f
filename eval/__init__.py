"""Evaluation: datasets, metrics, reports and benchmarks (public interfaces only)."""
