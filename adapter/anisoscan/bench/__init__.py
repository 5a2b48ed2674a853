"""Benchmarks: `python -m anisoscan.bench kernel` (FastScan throughput per SIMD level) and
`python -m anisoscan.bench compare` (recall vs QPS against ScaNN, faiss and HNSW)."""
