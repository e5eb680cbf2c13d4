"""Performance benchmarks of issue 10 (HTTP paths, concurrency, memory, purge) and their fakes."""
