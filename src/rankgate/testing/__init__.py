"""Tools for tests, benchmarks and chaos drills (never used in place of a model under test)."""
