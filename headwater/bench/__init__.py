"""Benchmarks: commands that print figures against a yardstick measured in the same run."""
