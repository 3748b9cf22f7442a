"""Benchmarks of every step against what users would run instead
(``python -m benchmarks.bench``; ``make bench`` and ``make bench-full``)."""
