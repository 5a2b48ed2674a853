"""anisoscan: a ScaNN-style vector index (IVF + anisotropic 4-bit PQ + SIMD FastScan)."""

from . import datasets
from ._core import IndexFileError, detected_simd_level, simd_level
from .flat import FlatIndex
from .index import Index, exact_search
from .metrics import recall_at_k
from .node.client import Client
from .params import IndexParams, SearchParams

__all__ = [
    "Client",
    "FlatIndex",
    "Index",
    "datasets",
    "IndexFileError",
    "IndexParams",
    "SearchParams",
    "detected_simd_level",
    "exact_search",
    "recall_at_k",
    "simd_level",
]
__version__ = "0.1.0"
