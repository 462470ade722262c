"""jinit's benchmark suite: ``python -m benchmarks [--quick]`` (``make bench`` / ``bench-quick``).

Every table runs jinit and its baselines side by side in one process (or in paired fresh
processes for cold start), repeats round-robin with a 0.2 s idle gap, and prints medians,
min/max and same-run ratios. See :mod:`benchmarks._harness` for the method.
"""
