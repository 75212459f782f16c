"""Performance benchmarks, run by hand (not part of the test suite). See docs/benchmarks.md."""
