"""The project's own benchmarks (not tests). Run each from the project root as a module,
`python -m bench.orders` (`--help` says what it measures); `make bench` runs them all."""
