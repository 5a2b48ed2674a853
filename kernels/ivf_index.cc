#include "ivf_index.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

#include "distances.h"
#include "fastscan.h"
#include "fastscan_lut.h"
#include "kmeans.h"
#include "parallel.h"
#include "topk.h"

namespace anisoscan {

namespace {

// Candidates are labelled by location (partition << 32 | offset) until re-ranking.
uint64_t location_label(size_t partition, size_t offset) {
  return (static_cast<uint64_t>(partition) << 32) | offset;
}

class CandidateSink final : public ScanSink {
 public:
  CandidateSink(TopK<uint64_t>& heap, const QuantizedLut& lut, float bias, size_t partition)
      : heap_(heap), lut_(lut), bias_(bias), base_(location_label(partition, 0)) {}

  uint32_t push(size_t index, uint16_t score) override {
    heap_.push(bias_ + lut_.distance(score), base_ | index);
    return lut_.limit_for(heap_.worst() - bias_);
  }

 private:
  TopK<uint64_t>& heap_;
  const QuantizedLut& lut_;
  float bias_;
  uint64_t base_;
};

}  // namespace

IvfIndex::IvfIndex(const IndexParams& params)
    : params_(params), pq_(params.dim, params.pq.sub_dim), layout_{pq_.num_subspaces()} {
  if (params.nlist == 0 || params.nlist > 65536)
    throw std::invalid_argument("nlist: must be in [1, 65536]");
  params_.pq.threads = params.threads;
}

std::vector<float> IvfIndex::prepare(MatrixView<const float> x) const {
  std::vector<float> out(x.data, x.data + x.rows * x.cols);
  if (params_.metric == Metric::kCosine) normalize_rows({out.data(), x.rows, x.cols});
  return out;
}

void IvfIndex::train(MatrixView<const float> x) {
  const size_t d = params_.dim;
  if (x.cols != d) throw std::invalid_argument("vectors: dimension mismatch");
  if (x.rows < params_.nlist)
    throw std::invalid_argument("nlist: " + std::to_string(params_.nlist) + " partitions need at least as many vectors, got " +
                                std::to_string(x.rows) + "; lower nlist or add more vectors");
  // Sample rows for training (at least nlist of them).
  size_t ns = std::min(x.rows, std::max(params_.training_sample_size, params_.nlist));
  std::vector<size_t> rows(x.rows);
  std::iota(rows.begin(), rows.end(), 0);
  std::mt19937_64 rng(params_.seed);
  if (ns < x.rows) {
    std::shuffle(rows.begin(), rows.end(), rng);
    rows.resize(ns);
    std::sort(rows.begin(), rows.end());
  }
  std::vector<float> sample(ns * d);
  for (size_t i = 0; i < ns; ++i) std::copy(x.row(rows[i]), x.row(rows[i]) + d, sample.begin() + i * d);
  if (params_.metric == Metric::kCosine) normalize_rows({sample.data(), ns, d});
  MatrixView<const float> sv{sample.data(), ns, d};

  KMeansParams kp;
  kp.k = params_.nlist;
  kp.iterations = params_.kmeans_iters;
  kp.spherical = params_.metric != Metric::kL2;
  kp.seed = params_.seed;
  kp.threads = params_.threads;
  centers_ = kmeans(sv, kp);
  derive_center_tables();

  std::vector<int32_t> assign(ns);
  assign_nearest(sv, {centers_.data(), params_.nlist, d}, kp.spherical, assign.data(), nullptr, params_.threads);
  std::vector<float> residuals(ns * d);
  for (size_t i = 0; i < ns; ++i)
    for (size_t t = 0; t < d; ++t) residuals[i * d + t] = sample[i * d + t] - centers_[assign[i] * d + t];
  pq_.train({residuals.data(), ns, d}, sv, params_.pq);

  partitions_.assign(params_.nlist, Partition{});
  count_ = 0;
  trained_ = true;
}

void IvfIndex::add(MatrixView<const float> x, const int64_t* ids) {
  if (!trained_) throw std::logic_error("index is not trained: call build() or train() first");
  const size_t d = params_.dim, n = x.rows, m = pq_.num_subspaces();
  if (x.cols != d) throw std::invalid_argument("vectors: dimension mismatch");
  if (n == 0) return;
  std::vector<float> xp = prepare(x);
  MatrixView<const float> xv{xp.data(), n, d};
  std::vector<int32_t> assign(n);
  assign_nearest(xv, {centers_.data(), params_.nlist, d}, params_.metric != Metric::kL2, assign.data(),
                 nullptr, params_.threads);
  std::vector<float> residuals(n * d);
  for (size_t i = 0; i < n; ++i)
    for (size_t t = 0; t < d; ++t) residuals[i * d + t] = xp[i * d + t] - centers_[assign[i] * d + t];
  std::vector<uint8_t> codes(n * m);
  pq_.encode({residuals.data(), n, d}, xv, params_.pq, codes.data());

  // Reserve exactly so that a build allocates no growth slack.
  std::vector<size_t> incoming(params_.nlist, 0);
  for (size_t i = 0; i < n; ++i) ++incoming[assign[i]];
  for (size_t p = 0; p < params_.nlist; ++p) {
    if (incoming[p] == 0) continue;
    Partition& part = partitions_[p];
    const size_t total = part.size() + incoming[p];
    part.ids.reserve(total);
    part.codes.reserve(layout_.bytes_for(total));
    if (params_.with_raw_data) part.raw.reserve(total * d);
  }
  for (size_t i = 0; i < n; ++i) {
    Partition& part = partitions_[assign[i]];
    const size_t offset = part.size();
    part.ids.push_back(ids[i]);
    part.codes.resize(layout_.bytes_for(offset + 1), 0);
    layout_.pack(codes.data() + i * m, 1, offset, part.codes.data());
    if (params_.with_raw_data) part.raw.insert(part.raw.end(), xv.row(i), xv.row(i) + d);
  }
  count_ += n;
}

void IvfIndex::search(MatrixView<const float> queries, const SearchParams& sp, int64_t* ids,
                      float* distances) const {
  if (!trained_) throw std::logic_error("index is not built: call build() before search()");
  if (queries.cols != params_.dim) throw std::invalid_argument("queries: dimension mismatch");
  if (sp.k == 0) throw std::invalid_argument("k: must be positive");
  if (sp.nprobe == 0 || sp.nprobe > params_.nlist)
    throw std::invalid_argument("nprobe: must be in [1, nlist=" + std::to_string(params_.nlist) + "]");
  if (sp.reorder_k != 0 && sp.reorder_k < sp.k)
    throw std::invalid_argument("reorder_k: must be >= k");
  std::vector<float> qp = prepare(queries);
  const size_t d = params_.dim;
  parallel_for(queries.rows, sp.threads, 1, [&](size_t b, size_t e, int) {
    for (size_t i = b; i < e; ++i) search_one(qp.data() + i * d, sp, ids + i * sp.k, distances + i * sp.k);
  });
}

void IvfIndex::search_one(const float* q, const SearchParams& sp, int64_t* out_ids,
                          float* out_dist) const {
  const size_t d = params_.dim, m = pq_.num_subspaces();
  const bool l2 = params_.metric == Metric::kL2;
  const FastScanKernel& kernel = fastscan_kernel(active_simd_level());

  // Partitions to visit, best first, so the threshold tightens early.
  const size_t nlist = params_.nlist;
  std::vector<float> center_ip(nlist);
  inner_products_transposed(q, centers_t_.data(), d, nlist, center_ip.data());
  TopK<uint32_t> nearest(sp.nprobe);
  for (size_t c = 0; c < nlist; ++c) {  // L2 up to the constant ||q||^2, which the LUT adds back
    float dist = l2 ? center_norms_[c] - 2.f * center_ip[c] : -center_ip[c];
    if (dist < nearest.worst() || !nearest.full()) nearest.push(dist, static_cast<uint32_t>(c));
  }
  const auto order = nearest.take_sorted();

  const bool rerank = params_.with_raw_data;
  const size_t keep = rerank ? std::max(sp.k, sp.reorder_k) : sp.k;
  TopK<uint64_t> heap(keep);
  std::vector<float> lut(m * kCodewords), residual(d);
  QuantizedLut qlut;
  AlignedVector<uint8_t> prepared;
  if (!l2) {  // inner product: one table for every partition, each adds its own <q, c>
    build_float_lut(pq_, q, false, lut.data());
    qlut = quantize_lut(lut.data(), m);
    prepared = kernel.prepare_lut(qlut.table.data(), m);
  }
  for (const auto& probe : order) {
    const size_t p = probe.label;
    const Partition& part = partitions_[p];
    if (part.size() == 0) continue;
    float bias = 0.f;
    if (l2) {  // ||q - c - y~||^2: the table is built for the query's residual
      for (size_t t = 0; t < d; ++t) residual[t] = q[t] - centers_[p * d + t];
      build_float_lut(pq_, residual.data(), true, lut.data());
      qlut = quantize_lut(lut.data(), m);
      prepared = kernel.prepare_lut(qlut.table.data(), m);
    } else {
      bias = probe.distance;
    }
    CandidateSink sink(heap, qlut, bias, p);
    kernel.scan(prepared.data(), m, part.codes.data(), part.size(), qlut.limit_for(heap.worst() - bias), sink);
  }

  auto candidates = heap.take_sorted();
  TopK<int64_t> best(sp.k);
  for (const auto& c : candidates) {
    const Partition& part = partitions_[c.label >> 32];
    const size_t off = c.label & 0xFFFFFFFFu;
    float dist = rerank ? internal_distance(params_.metric, q, part.raw.data() + off * d, d) : c.distance;
    best.push(dist, part.ids[off]);
  }
  auto result = best.take_sorted();
  const float missing = l2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
  for (size_t j = 0; j < sp.k; ++j) {
    out_ids[j] = j < result.size() ? result[j].label : -1;
    out_dist[j] = j < result.size() ? to_milvus_distance(params_.metric, result[j].distance) : missing;
  }
}

void IvfIndex::derive_center_tables() {
  const size_t d = params_.dim, nlist = params_.nlist;
  centers_t_.resize(d * nlist);
  for (size_t c = 0; c < nlist; ++c)
    for (size_t t = 0; t < d; ++t) centers_t_[t * nlist + c] = centers_[c * d + t];
  center_norms_ = row_norms_sq({centers_.data(), nlist, d});
}

size_t IvfIndex::memory_bytes() const {
  size_t bytes = sizeof(*this) + (centers_.capacity() + centers_t_.capacity() + center_norms_.capacity()) * sizeof(float) +
                 pq_.codebooks().capacity() * sizeof(float) + partitions_.capacity() * sizeof(Partition);
  for (const auto& p : partitions_)
    bytes += p.ids.capacity() * sizeof(int64_t) + p.codes.capacity() + p.raw.capacity() * sizeof(float);
  return bytes;
}

}  // namespace anisoscan
