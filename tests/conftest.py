"""Small generated datasets shared by the tests (tests never read ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan.datasets import Dataset, make_clustered


@pytest.fixture(scope="session")
def clustered() -> dict[str, Dataset]:
    """One clustered set per metric: 4,000 x 24 vectors, 60 queries."""
    return {m: make_clustered(4000, 24, n_queries=60, n_clusters=40, metric=m, seed=7) for m in ("IP", "L2", "COSINE")}


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
