"""Benchmarks: scripts that print numbers, run against live processes."""
