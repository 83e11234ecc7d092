"""Ratio benchmarks (not tests): ``python -m benchmarks`` runs them all and prints a table."""
