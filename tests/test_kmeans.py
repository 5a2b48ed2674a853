"""k-means (partitions and the quantizer's first codebooks): at convergence every center is
the mean of the points nearest to it, checked in float64, on both assignment paths (at most
16 centers: blocks of transposed points; more: the blocked center products)."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import _core


def separated_clusters(k: int, d: int, per: int, seed: int) -> np.ndarray:
    """k well-separated clusters (no point near a tie between two centers)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)) * 10
    return (means[:, None, :] + rng.standard_normal((k, per, d)) * 0.3).reshape(-1, d).astype(np.float32)


@pytest.mark.parametrize("k,d", [(3, 2), (16, 2), (16, 5), (40, 8)], ids=["few-2d", "16-2d", "16-5d", "panels-40"])
def test_l2_centers_are_the_means_of_their_nearest_points(k, d):
    x = separated_clusters(k, d, 150, seed=k * d)
    centers = _core.testing.kmeans(x, k, 30).astype(np.float64)
    x64 = x.astype(np.float64)
    nearest = ((x64[:, None, :] - centers[None]) ** 2).sum(axis=2).argmin(axis=1)
    for c in range(k):
        members = x64[nearest == c]
        if len(members):  # an empty cluster is re-seeded from the largest, not a mean
            np.testing.assert_allclose(centers[c], members.mean(axis=0), rtol=1e-5, atol=1e-5)
    assert len(np.unique(nearest)) >= k - 1  # the separated clusters were found


@pytest.mark.parametrize("k", [8, 40])
def test_spherical_centers_are_the_means_of_the_points_closest_in_direction(k):
    """Spherical k-means assigns by the cosine to a center; each center is its points' mean
    (residual codes want residuals of mean zero), so its length is below 1 for unit points."""
    x = separated_clusters(k, 16, 150, seed=k)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centers = _core.testing.kmeans(x, k, 30, spherical=True).astype(np.float64)
    lengths = np.linalg.norm(centers, axis=1)
    assert np.all(lengths < 1.0) and np.all(lengths > 0.5)
    best = (x.astype(np.float64) @ (centers / lengths[:, None]).T).argmax(axis=1)
    for c in range(k):
        members = x[best == c].astype(np.float64)
        if len(members):
            np.testing.assert_allclose(centers[c], members.mean(axis=0), rtol=1e-5, atol=1e-5)


def test_points_without_dimensions_are_refused():
    with pytest.raises(ValueError, match="dimension"):
        _core.testing.kmeans(np.zeros((5, 0), np.float32), 2, 1)
