"""Benchmarks: `python -m anisoscan.bench kernel` (FastScan throughput per SIMD level)."""
