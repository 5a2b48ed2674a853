"""The score-aware loss: the theory checked numerically, and the training that uses it."""

from __future__ import annotations

import numpy as np
import pytest
from anisoscan import Index, _core, exact_search, recall_at_k
from anisoscan.datasets import make_clustered


def sin_power_integral(k: float, upper: float, points: int = 200_001) -> float:
    """integral_0^upper sin(theta)^k dtheta by the trapezoid rule (independent of the C++ code)."""
    theta = np.linspace(0.0, upper, points)
    return float(np.trapezoid(np.sin(theta) ** k, theta))


def h_factors(norm: float, threshold: float, d: int) -> tuple[float, float]:
    """h_par, h_perp of Theorem 3.2 for the step weight w(t) = [t >= threshold]."""
    alpha = np.arccos(np.clip(threshold / norm, -1.0, 1.0))  # w = 1 exactly for theta <= alpha
    i_d2, i_d = sin_power_integral(d - 2, alpha), sin_power_integral(d, alpha)
    return (d - 1) * (i_d2 - i_d), i_d


@pytest.mark.parametrize("d, norm, threshold", [(4, 1.0, 0.2), (6, 1.3, 0.5), (8, 1.0, -2.0)])
def test_theorem_3_2_monte_carlo(d, norm, threshold):
    """E_q[w(<q,x>) <q, x - x~>^2] over q uniform on the sphere equals
    (h_par ||r_par||^2 + h_perp ||r_perp||^2) / ((d - 1) Z), Z = integral_0^pi sin^(d-2):
    the one constant that normalizes the density of the angle between q and x."""
    rng = np.random.default_rng(d)
    x = rng.normal(size=d)
    x *= norm / np.linalg.norm(x)
    r = 0.3 * rng.normal(size=d)
    xhat = x / norm
    r_par = (r @ xhat) * xhat
    r_perp = r - r_par

    q = rng.normal(size=(1_000_000, d))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    samples = (q @ x >= threshold) * (q @ r) ** 2
    mc, stderr = samples.mean(), samples.std() / np.sqrt(len(samples))

    h_par, h_perp = h_factors(norm, threshold, d)
    z = sin_power_integral(d - 2, np.pi)
    predicted = (h_par * (r_par @ r_par) + h_perp * (r_perp @ r_perp)) / ((d - 1) * z)
    assert abs(mc - predicted) < 4 * stderr, (mc, predicted, stderr)


def test_eta_matches_the_integrals():
    for d, norm, t in [(3, 1.0, 0.2), (50, 1.0, 0.2), (128, 2.0, 0.6), (100, 1.0, 0.9)]:
        h_par, h_perp = h_factors(norm, t, d)
        assert _core.testing.anisotropic_eta(norm, t, d, exact=True) == pytest.approx(h_par / h_perp, rel=1e-4)


def test_theorem_3_3_eta_at_least_one():
    for d in (2, 3, 10, 50, 128, 768):
        for t in (0.01, 0.1, 0.2, 0.5, 0.9, 0.99):
            for exact in (False, True):
                assert _core.testing.anisotropic_eta(1.0, t, d, exact=exact) >= 1.0
    # A constant weight (the threshold below every score) gives eta = 1 exactly.
    for d in (3, 10, 50):
        h_par, h_perp = h_factors(1.0, -2.0, d)
        assert h_par / h_perp == pytest.approx(1.0, rel=1e-6)
    assert _core.testing.anisotropic_eta(1.0, 0.0, 50) == 1.0  # T = 0: plain PQ
    assert _core.testing.anisotropic_eta(0.1, 0.2, 50) == 1.0  # ||x|| <= T: plain PQ


def test_theorem_3_4_large_d_limit():
    t = 0.2
    limit = t * t / (1 - t * t)
    gaps = [abs(_core.testing.anisotropic_eta(1.0, t, d, exact=True) / (d - 1) - limit) / limit
            for d in (10, 50, 200, 1000, 5000)]
    assert all(b < a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.01
    assert _core.testing.anisotropic_eta(1.0, t, 128) == pytest.approx((128 - 1) * limit)


@pytest.fixture(scope="module")
def unit_data():
    """d=16 unit vectors; trained with T=0.5 (eta = 15 * 0.25 / 0.75 = 5)."""
    return make_clustered(3000, 16, n_queries=100, n_clusters=20, metric="IP", seed=11)


def per_row_loss(y, x, codebooks, codes, eta):
    m, _, ds = codebooks.shape
    rec = codebooks[np.arange(m)[None, :], codes.astype(np.int64)].reshape(len(y), m * ds)[:, : y.shape[1]]
    r = y - rec
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return (r * r).sum(1) + (eta - 1) * ((r * u).sum(1)) ** 2


@pytest.mark.parametrize("full", [True, False], ids=["full", "assignment-only"])
def test_training_loss_never_increases(unit_data, full):
    x = unit_data.base
    out = _core.testing.train_pq(x, x, 2, 0.5, 6, anisotropic_codebooks=full)
    history = np.array(out["loss_history"])
    assert len(history) == (13 if full else 2)
    assert np.all(np.diff(history) <= 1e-9 * history[0]), history
    assert history[-1] < history[0]


def test_training_gives_the_same_quantizer_on_any_number_of_threads():
    """Sums over rows are taken per fixed block of rows and added in block order: the thread
    count must not change a bit of the codebooks (here 3 row blocks, on 1, 2 and 3 threads)."""
    x = make_clustered(10000, 24, n_queries=1, n_clusters=40, metric="IP", seed=4).base
    runs = [_core.testing.train_pq(x, x, 2, 0.4, 3, threads=t) for t in (1, 2, 3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other["codebooks"], runs[0]["codebooks"])
        np.testing.assert_array_equal(other["codes"], runs[0]["codes"])
        assert other["loss_history"] == runs[0]["loss_history"]
    assert runs[0]["loss_history"][-1] < runs[0]["loss_history"][0]


def test_coordinate_descent_never_worse_than_nearest_codes(unit_data):
    x = unit_data.base
    out = _core.testing.train_pq(x, x, 2, 0.5, 4)
    eta = _core.testing.anisotropic_eta(1.0, 0.5, x.shape[1])
    assert eta > 4
    cd = per_row_loss(x, x, out["codebooks"], out["codes"], eta)
    nearest = per_row_loss(x, x, out["codebooks"], out["nearest_codes"], eta)
    assert np.all(cd <= nearest + 1e-5)
    assert cd.mean() < nearest.mean()
    assert out["loss_codes"] <= out["loss_nearest_codes"]


def test_coordinate_descent_ends_where_no_single_code_change_helps(unit_data):
    """Run to convergence, the refinement leaves every row at a coordinate-wise minimum of its
    loss: checked here in float64 for each of the 15 other codewords of every sub-space."""
    x = unit_data.base
    out = _core.testing.train_pq(x, x, 2, 0.5, 3, max_assign_rounds=1000)
    eta = _core.testing.anisotropic_eta(1.0, 0.5, x.shape[1])
    books = out["codebooks"].astype(np.float64)
    codes = out["codes"].astype(np.int64)
    m, k, ds = books.shape
    n = len(x)
    y = x.astype(np.float64).reshape(n, m, 1, ds)
    u = y / np.linalg.norm(x.astype(np.float64), axis=1)[:, None, None, None]
    r = y - books[None, :, :, :]  # [n, m, k, ds]: each sub-space's residual under every codeword
    sq, pr = (r * r).sum(axis=3), (r * u).sum(axis=3)
    own_sq = np.take_along_axis(sq, codes[:, :, None], axis=2)  # [n, m, 1]
    own_pr = np.take_along_axis(pr, codes[:, :, None], axis=2)
    total_sq, total_pr = own_sq.sum(axis=1, keepdims=True), own_pr.sum(axis=1, keepdims=True)
    par = total_pr - own_pr + pr
    loss = total_sq - own_sq + sq + (eta - 1) * par * par  # loss after changing one code
    current = (total_sq + (eta - 1) * total_pr * total_pr)[:, 0, 0]
    np.testing.assert_allclose(current, per_row_loss(x, x, out["codebooks"], out["codes"], eta), rtol=1e-4)
    assert out["loss_codes"] == pytest.approx(current.mean(), rel=1e-6)
    # u is rounded to float32 in the kernel: changes within 1e-6 of the loss are ties here
    assert np.all(loss.min(axis=(1, 2)) >= current * (1 - 1e-6))
    changed = (codes != out["nearest_codes"]).mean()
    assert changed > 0.05, changed  # the descent did move codes


def test_anisotropic_codes_trade_parallel_for_perpendicular_error(unit_data):
    x = unit_data.base
    u = x / np.linalg.norm(x, axis=1, keepdims=True)

    def parallel_and_perpendicular(threshold):
        out = _core.testing.train_pq(x, x, 2, threshold, 6)
        m, _, ds = out["codebooks"].shape
        rec = out["codebooks"][np.arange(m)[None, :], out["codes"].astype(np.int64)].reshape(len(x), -1)[:, :16]
        r = x - rec
        par = ((r * u).sum(1) ** 2).mean()
        return par, (r * r).sum(1).mean() - par

    plain_par, plain_perp = parallel_and_perpendicular(0.0)
    aniso_par, aniso_perp = parallel_and_perpendicular(0.5)
    assert aniso_par < 0.8 * plain_par
    assert aniso_perp > plain_perp


def test_anisotropic_index_ranks_inner_products_better_without_raw_data():
    data = make_clustered(6000, 32, n_queries=200, n_clusters=30, metric="IP", seed=5)
    truth, _ = exact_search(data.base, data.queries, 10, "IP")

    def recall(threshold):
        index = Index(32, "IP", nlist=16, with_raw_data=False, anisotropic_threshold=threshold).build(data.base)
        return recall_at_k(index.search(data.queries, 10, nprobe=16)[0], truth, 10)

    # d=32: T=0.4 gives eta ~ 5.9 (T=0.2 would give ~1.3, barely anisotropic at this d).
    assert recall(0.4) > recall(0.0) + 0.05


def test_l2_default_threshold_is_relative_to_the_data_scale():
    x = make_clustered(2000, 16, metric="L2", seed=3).base * 40.0
    index = Index(16, "L2", nlist=8)
    assert index.params.anisotropic_threshold is None  # resolved by build
    index.build(x)
    assert index.params.anisotropic_threshold == pytest.approx(0.1 * np.linalg.norm(x, axis=1).mean(), rel=1e-4)
    assert Index(16, "L2", nlist=8, anisotropic_threshold=0).build(x).params.anisotropic_threshold == 0.0


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize(("eta", "norm", "d"), [(1.5, 1.0, 50), (3.0, 1.0, 768), (6.0, 1.0, 50), (34.0, 1.0, 768),
                                                (2.0, 2.5, 128), (4.0, 0.7, 16)])
def test_threshold_for_eta_inverts_eta(eta, norm, d, exact):
    t = _core.testing.threshold_for_eta(eta, norm, d, exact=exact)
    assert 0.0 < t < norm
    assert _core.testing.anisotropic_eta(norm, t, d, exact=exact) == pytest.approx(eta, rel=1e-6)


def test_threshold_for_eta_at_most_one_is_plain_pq():
    for eta in (1.0, 0.5, float("nan")):
        assert _core.testing.threshold_for_eta(eta, 1.0, 64) == 0.0


def measured_eta_reference(sample, centers, assign, data_rows, queries=1000, partners=10_000, rank_at=100):
    """measure_eta by its definition (anisotropic_threshold.h), in float64 numpy."""
    x = sample.astype(np.float64)
    ns = len(x)
    nq, npart = min(queries, ns), min(partners, ns)
    qi, pj = np.arange(nq) * ns // nq, np.arange(npart) * ns // npart
    scores = x[qi] @ x[pj].T
    scores[qi[:, None] == pj[None, :]] = -np.inf
    rank = int(np.clip(round(rank_at * len(pj) / max(data_rows, ns)), 1, len(pj) - 1))
    kth = -np.sort(-scores, axis=1)[:, rank - 1]
    pair_score = np.sort(kth)[len(kth) // 2]
    i, j = np.nonzero(scores >= pair_score)
    xs, res = x[pj[j]], (x - centers[assign].astype(np.float64))[pj[j]]
    norm = np.linalg.norm(xs, axis=1)
    along = (res * xs).sum(1) / norm
    across = np.sqrt((res * res).sum(1) - along**2)
    par = scores[i, j] / norm
    perp = (np.einsum("nd,nd->n", x[qi[i]], res) - along * par) / across
    return (par**2).sum() / (perp**2).sum(), pair_score, len(i)


@pytest.mark.parametrize(("n", "data_rows"), [(800, 800), (12_000, 50_000)])
def test_measured_eta_equals_the_reference(n, data_rows):
    # 800 rows: every row both a query and a partner; 12,000: spread picks and a rank scaled
    # from the rows the sample stands for.
    x = make_clustered(n, 24, n_queries=0, n_clusters=20, spread=0.6, metric="IP", seed=4).base
    centers = _core.testing.kmeans(x, 12, 4, True, 7)
    assign = np.argmax(x @ centers.T, axis=1).astype(np.int32)
    got = _core.testing.measure_eta(x, centers, assign, data_rows)
    eta, pair_score, pairs = measured_eta_reference(x, centers, assign, data_rows)
    assert got["pair_score"] == pytest.approx(pair_score, abs=1e-5)
    assert abs(got["pairs"] - pairs) <= 2  # float32 products may move a pair at the boundary
    assert got["eta"] == pytest.approx(eta, rel=2e-3)
    assert got["eta"] > 1.5


def low_rank_embeddings(n, dim, rank, spread, seed):
    """Unit vectors from clusters in a rank-`rank` subspace of `dim`: like text embeddings,
    far fewer directions filled than dimensions."""
    low = make_clustered(n, rank, n_queries=0, n_clusters=40, spread=spread, metric="L2", seed=seed).base
    x = low @ np.random.default_rng(seed).normal(size=(rank, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_inner_product_threshold_is_measured_on_the_data_and_pays():
    x = low_rank_embeddings(6500, 384, 64, 1.2, seed=1)
    base, queries = x[:6000], x[6000:]
    truth, _ = exact_search(base, queries, 10, "IP")

    def build(**kw):
        return Index(384, "IP", nlist=16, with_raw_data=False, **kw).build(base)

    measured = build()
    fixed = build(anisotropic_threshold=0.2)
    # ScaNN's 0.2 gives eta ~17 at d=384; the data's neighbours call for ~3.
    assert measured.params.anisotropic_threshold < 0.1
    assert _core.testing.anisotropic_eta(1.0, measured.params.anisotropic_threshold, 384, exact=True) < 6
    recall = {name: recall_at_k(index.search(queries, 10, nprobe=16)[0], truth, 10)
              for name, index in (("measured", measured), ("fixed", fixed))}
    assert recall["measured"] > recall["fixed"] + 0.005, recall


def test_inner_product_threshold_is_at_most_scanns():
    # Isotropic clusters ask for a stronger loss than 0.2; the default keeps 0.2.
    data = make_clustered(3000, 128, n_queries=0, spread=0.35, metric="IP", seed=2)
    index = Index(128, "IP", nlist=16, with_raw_data=False)
    assert index.params.anisotropic_threshold is None  # resolved by build
    assert index.build(data.base).params.anisotropic_threshold == 0.2


@pytest.mark.parametrize(("name", "fixed", "weak", "strong", "error"), [
    # The plain k-means iterations that start the codebooks. With no anisotropic round the
    # codebooks are that k-means alone, so more of it must quantize at least as well.
    ("pq_init_iters", {"pq_iterations": 0}, 1, 25, r"pq_init_iters: 0 is out of range; must be \[1, 1000\]"),
    # The rows of the training sample (drawn with the seed) that the codebooks train on; every
    # row is still encoded, and the whole sample must quantize at least as well.
    ("pq_training_sample_size", {}, 1500, 100000, r"pq_training_sample_size: 0 is out of range"),
], ids=["pq_init_iters", "pq_training_sample_size"])
def test_quantizer_training_knobs_change_the_codebooks_and_are_kept(tmp_path, name, fixed, weak, strong, error):
    """Each setting changes the codes, repeats exactly, does not lose recall when raised, and
    survives a save and load; 0 is refused naming the parameter."""
    data = make_clustered(6000, 16, n_queries=100, n_clusters=20, metric="IP", seed=11)
    truth, _ = exact_search(data.base, data.queries, 10, "IP")

    def build(value: int) -> Index:
        return Index(16, "IP", nlist=8, with_raw_data=False, **fixed, **{name: value}).build(data.base)

    low, high = build(weak), build(strong)
    assert len(low) == 6000
    ids_low, dist_low = low.search(data.queries, 10, nprobe=8)
    ids_high, dist_high = high.search(data.queries, 10, nprobe=8)
    assert not np.array_equal(dist_low, dist_high)
    assert recall_at_k(ids_high, truth, 10) >= recall_at_k(ids_low, truth, 10) - 0.01
    np.testing.assert_array_equal(build(weak).search(data.queries, 10, nprobe=8)[0], ids_low)  # deterministic
    low.save(tmp_path / "i.anisoscan")
    assert getattr(Index.load(tmp_path / "i.anisoscan").params, name) == weak
    with pytest.raises(ValueError, match=error):
        Index(16, "IP", **{name: 0})
