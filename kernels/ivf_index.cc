#include "ivf_index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_set>

#include "distances.h"
#include "fastscan.h"
#include "fastscan_lut.h"
#include "index_file.h"
#include "kmeans.h"
#include "parallel.h"
#include "topk.h"

namespace anisoscan {

namespace {

// Candidates are labelled by location (partition << 32 | offset) until re-ranking.
uint64_t location_label(size_t partition, size_t offset) {
  return (static_cast<uint64_t>(partition) << 32) | offset;
}

std::string some_ids(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size() && i < 5; ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + (ids.size() > 5 ? ", ...]" : "]");
}

// How much of the next partition's codes to request ahead of scanning it.
constexpr size_t kCodePrefetchBytes = 1024;

// Asks for every cache line of [p, p + bytes).
void prefetch_bytes(const void* p, size_t bytes) {
  constexpr uintptr_t kLine = 64;
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~(kLine - 1);
  for (uintptr_t a = first; a < reinterpret_cast<uintptr_t>(p) + bytes; a += kLine)
    __builtin_prefetch(reinterpret_cast<const void*>(a));
}

float missing_distance(Metric metric) {
  return metric == Metric::kL2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
}

}  // namespace

// The filter of one search call, resolved to a bit per stored vector.
class IvfIndex::Passes {
 public:
  // O(filter size) for id lists (through the id map), plus O(N) only for a mask (it is
  // indexed by id, so every stored id is looked up once).
  Passes(const std::vector<Partition>& partitions, const IdMap& map, const IdFilter& f)
      : first_(partitions.size() + 1, 0) {
    for (size_t p = 0; p < partitions.size(); ++p) first_[p + 1] = first_[p] + partitions[p].size();
    const size_t total = first_.back();
    bits_.assign((total + 63) / 64, f.has_allowed ? 0 : ~uint64_t{0});
    if (!f.has_allowed && total % 64) bits_.back() = (uint64_t{1} << (total % 64)) - 1;
    allowed_in_.assign(partitions.size(), 0);
    if (f.has_allowed)
      for (int64_t id : f.allowed) set(map.find(id, partitions), true);
    else
      for (size_t p = 0; p < partitions.size(); ++p) allowed_in_[p] = partitions[p].size();
    for (int64_t id : f.excluded) set(map.find(id, partitions), false);
    if (f.has_mask)
      for (size_t p = 0; p < partitions.size(); ++p)
        for (size_t i = 0; i < partitions[p].size(); ++i) {
          const int64_t id = partitions[p].ids()[i];
          if (!(id >= 0 && static_cast<uint64_t>(id) < f.mask.size && f.mask[id]))
            set(Location{static_cast<uint32_t>(p), static_cast<uint32_t>(i)}, false);
        }
  }
  bool test(size_t p, size_t i) const {
    size_t bit = first_[p] + i;
    return (bits_[bit / 64] >> (bit % 64)) & 1;
  }
  size_t allowed_in(size_t p) const { return allowed_in_[p]; }

 private:
  void set(std::optional<Location> at, bool pass) {
    if (!at || test(at->partition, at->offset) == pass) return;
    const size_t bit = first_[at->partition] + at->offset;
    bits_[bit / 64] ^= uint64_t{1} << (bit % 64);
    allowed_in_[at->partition] += pass ? 1 : size_t(-1);
  }

  std::vector<size_t> first_;
  std::vector<uint64_t> bits_;
  std::vector<size_t> allowed_in_;
};

namespace {

// One query's lookup table, quantized and in the kernel's register order. One table serves
// every partition, except for L2 with residual codes: there each partition needs a table
// for the query's offset from its center. The buffers are kept between builds: nothing is
// allocated per partition.
class PreparedTable {
 public:
  PreparedTable(const ProductQuantizer& pq, const FastScanKernel& kernel)
      : pq_(&pq),
        kernel_(&kernel),
        lut_(pq.num_subspaces() * kCodewords),
        target_(pq.num_subspaces() * pq.sub_dim(), 0.f),
        prepared_(FastScanLayout{pq.num_subspaces()}.prepared_lut_bytes()) {}

  // The table of `query`, or of its offset from `center` when that is not null.
  void build(const float* query, bool l2, const float* center) {
    for (size_t t = 0; t < pq_->dim(); ++t) target_[t] = center ? query[t] - center[t] : query[t];
    build_float_lut(*pq_, target_.data(), l2, lut_.data());
    kernel_->quantize_lut(lut_.data(), pq_->num_subspaces(), quantized_);
    kernel_->prepare_lut(quantized_.table.data(), pq_->num_subspaces(), prepared_.data());
  }
  const QuantizedLut& lut() const { return quantized_; }
  const uint8_t* prepared() const { return prepared_.data(); }

 private:
  const ProductQuantizer* pq_;
  const FastScanKernel* kernel_;
  std::vector<float> lut_;
  std::vector<float> target_;  // query or residual, zero-padded to whole sub-spaces
  QuantizedLut quantized_;
  AlignedVector<uint8_t> prepared_;
};

// Feeds the candidate reservoir from a partition scan, skipping vectors the filter rejects.
// The limit handed back to the kernel tightens only when the reservoir's threshold does.
template <typename Passes>
class TopKSink final : public ScanSink {
 public:
  TopKSink(ReservoirTopK<uint64_t>& top, const QuantizedLut& lut, float bias, size_t partition, const Passes* passes)
      : top_(top), lut_(lut), bias_(bias), partition_(partition), passes_(passes) {
    update_limit();
  }
  uint32_t limit() const { return limit_; }

  uint32_t push(size_t index, uint16_t score) override {
    if (passes_ && !passes_->test(partition_, index)) return limit_;
    top_.push(bias_ + lut_.distance(score), location_label(partition_, index));
    if (top_.worst() != worst_) update_limit();
    return limit_;
  }

 private:
  void update_limit() {
    worst_ = top_.worst();
    limit_ = lut_.limit_for(worst_ - bias_);
  }

  ReservoirTopK<uint64_t>& top_;
  const QuantizedLut& lut_;
  float bias_;
  size_t partition_;
  const Passes* passes_;
  float worst_;
  uint32_t limit_;
};

// Collects every vector whose approximate distance lies in [low, high).
template <typename Passes>
class RangeSink final : public ScanSink {
 public:
  RangeSink(std::vector<std::pair<float, int64_t>>& out, const QuantizedLut& lut, float bias, float low, float high,
            const Partition& part, size_t p, const Passes* passes)
      : out_(out), lut_(lut), bias_(bias), low_(low), high_(high), part_(part), p_(p), passes_(passes) {
    limit_ = lut_.limit_for(high - bias);
  }
  uint32_t limit() const { return limit_; }

  uint32_t push(size_t index, uint16_t score) override {
    float dist = bias_ + lut_.distance(score);
    if (dist >= low_ && dist < high_ && (!passes_ || passes_->test(p_, index)))
      out_.emplace_back(dist, part_.ids()[index]);
    return limit_;
  }

 private:
  std::vector<std::pair<float, int64_t>>& out_;
  const QuantizedLut& lut_;
  float bias_, low_, high_;
  const Partition& part_;
  size_t p_;
  const Passes* passes_;
  uint32_t limit_;
};

}  // namespace

IvfIndex::IvfIndex(const IndexParams& params)
    : params_(params),
      pq_(params.dim, params.pq.sub_dim),
      layout_{pq_.num_subspaces()},
      mutex_(std::make_unique<std::shared_mutex>()),
      id_map_mutex_(std::make_unique<std::mutex>()) {
  if (params.nlist == 0 || params.nlist > 65536) throw std::invalid_argument("nlist: must be in [1, 65536]");
  params_.pq.threads = params.threads;
}

IvfIndex::IvfIndex(IvfIndex&&) noexcept = default;
IvfIndex& IvfIndex::operator=(IvfIndex&&) noexcept = default;
IvfIndex::~IvfIndex() = default;

size_t IvfIndex::size() const {
  std::shared_lock lock(*mutex_);
  size_t n = 0;
  for (const auto& p : partitions_) n += p.size();
  return n;
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
    throw std::invalid_argument("nlist: " + std::to_string(params_.nlist) +
                                " partitions need at least as many vectors, got " + std::to_string(x.rows) +
                                "; lower nlist or add more vectors");
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
  std::vector<float> centers = kmeans(sv, kp);

  std::vector<int32_t> assign(ns);
  assign_nearest(sv, {centers.data(), params_.nlist, d}, kp.spherical, assign.data(), nullptr, params_.threads);
  std::vector<float> targets = code_targets(sv, centers, assign.data());
  ProductQuantizer pq(d, params_.pq.sub_dim);
  pq.train({targets.data(), ns, d}, sv, params_.pq);

  std::unique_lock lock(*mutex_);
  centers_ = std::move(centers);
  derive_center_tables();
  pq_ = std::move(pq);
  partitions_.assign(params_.nlist, Partition{});
  id_map_ = IdMap{};
  id_map_built_ = false;
  mapping_.reset();
  trained_ = true;
}

void IvfIndex::add(MatrixView<const float> x, const int64_t* ids, bool replace) {
  if (!trained_) throw std::logic_error("index is not trained: call build() or train() first");
  const size_t d = params_.dim, n = x.rows, m = pq_.num_subspaces();
  if (x.cols != d) throw std::invalid_argument("vectors: dimension mismatch");
  if (n == 0) return;
  // Encoding reads only what training fixed, so it runs before taking the lock.
  std::vector<float> xp = prepare(x);
  MatrixView<const float> xv{xp.data(), n, d};
  std::vector<int32_t> assign(n);
  assign_nearest(xv, {centers_.data(), params_.nlist, d}, params_.metric != Metric::kL2, assign.data(), nullptr,
                 params_.threads);
  std::vector<float> targets = code_targets(xv, centers_, assign.data());
  std::vector<uint8_t> codes(n * m);
  pq_.encode({targets.data(), n, d}, xv, params_.pq, codes.data());

  std::unique_lock lock(*mutex_);
  std::unordered_set<int64_t> incoming(ids, ids + n);
  if (incoming.size() != n) throw std::invalid_argument("ids: duplicate ids in one call; each id may appear once");
  size_t stored = 0;
  for (const auto& part : partitions_) stored += part.size();
  // A first add (a build) has nothing to collide with: the map is left to be built on first use.
  const bool track = stored > 0 || id_map_built_;
  std::vector<int64_t> present;
  if (track)
    for (size_t i = 0; i < n; ++i)
      if (id_map().find(ids[i], partitions_)) present.push_back(ids[i]);
  if (!present.empty()) {
    if (!replace)
      throw std::invalid_argument("ids: " + std::to_string(present.size()) + " id(s) already in the index, e.g. " +
                                  some_ids(present) + "; delete them first or upsert");
    remove_locked({present.data(), present.size()});
  }
  // Reserve exactly so that a build allocates no growth slack.
  std::vector<size_t> incoming_per_partition(params_.nlist, 0);
  for (size_t i = 0; i < n; ++i) ++incoming_per_partition[assign[i]];
  for (size_t p = 0; p < params_.nlist; ++p)
    if (incoming_per_partition[p])
      partitions_[p].reserve(layout_, partitions_[p].size() + incoming_per_partition[p], d, params_.with_raw_data);
  for (size_t i = 0; i < n; ++i) {
    Partition& part = partitions_[assign[i]];
    part.append(layout_, ids[i], codes.data() + i * m, params_.with_raw_data ? xv.row(i) : nullptr, d);
    if (track)
      id_map_.insert(ids[i], {static_cast<uint32_t>(assign[i]), static_cast<uint32_t>(part.size() - 1)}, partitions_);
  }
}

std::vector<float> IvfIndex::code_targets(MatrixView<const float> x, const std::vector<float>& centers,
                                          const int32_t* assign) const {
  const size_t d = x.cols;
  std::vector<float> targets(x.data, x.data + x.rows * d);
  if (params_.by_residual)
    for (size_t i = 0; i < x.rows; ++i)
      for (size_t t = 0; t < d; ++t) targets[i * d + t] -= centers[assign[i] * d + t];
  return targets;
}

float IvfIndex::score_bias(float center_distance) const {
  return params_.by_residual && params_.metric != Metric::kL2 ? center_distance : 0.f;
}

std::vector<Location> IvfIndex::locate(Span<const int64_t> ids, const char* what) const {
  const IdMap& map = id_map();
  std::vector<Location> where(ids.size);
  std::vector<int64_t> missing;
  for (size_t i = 0; i < ids.size; ++i) {
    std::optional<Location> at = map.find(ids[i], partitions_);
    if (at)
      where[i] = *at;
    else
      missing.push_back(ids[i]);
  }
  if (!missing.empty())
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(missing.size()) +
                                " id(s) not in the index, e.g. " + some_ids(missing) + "; nothing was changed");
  return where;
}

const IdMap& IvfIndex::id_map() const {
  std::lock_guard guard(*id_map_mutex_);
  if (!id_map_built_) {
    id_map_.rebuild(partitions_);
    id_map_built_ = true;
  }
  return id_map_;
}

void IvfIndex::remove(Span<const int64_t> ids) {
  if (!trained_) throw std::logic_error("index is not built: nothing to delete");
  std::unique_lock lock(*mutex_);
  remove_locked(ids);
}

void IvfIndex::remove_locked(Span<const int64_t> ids) {
  std::vector<Location> where = locate(ids, "ids");
  // Highest offsets first: swap-remove then never moves a vector that is still to go.
  std::sort(where.begin(), where.end(), [](const Location& a, const Location& b) {
    return a.partition != b.partition ? a.partition < b.partition : a.offset > b.offset;
  });
  where.erase(std::unique(where.begin(), where.end(),
                          [](const Location& a, const Location& b) {
                            return a.partition == b.partition && a.offset == b.offset;
                          }),
              where.end());
  for (const Location& loc : where) {
    Partition& part = partitions_[loc.partition];
    const size_t last = part.size() - 1;
    id_map_.erase(part.ids()[loc.offset], partitions_);
    if (loc.offset != last) id_map_.relocate(part.ids()[last], loc, partitions_);
    part.swap_remove(layout_, loc.offset, params_.dim);
  }
}

void IvfIndex::compact() {
  std::unique_lock lock(*mutex_);
  for (auto& part : partitions_) part.shrink();
  id_map_ = IdMap{};  // sized for what remains when next needed
  id_map_built_ = false;
}

void IvfIndex::contains(Span<const int64_t> ids, uint8_t* out) const {
  std::shared_lock lock(*mutex_);
  const IdMap& map = id_map();
  for (size_t i = 0; i < ids.size; ++i) out[i] = map.find(ids[i], partitions_) ? 1 : 0;
}

void IvfIndex::get_vectors(Span<const int64_t> ids, float* out) const {
  if (!params_.with_raw_data)
    throw std::invalid_argument(
        "get_vectors: this index keeps no raw vectors (with_raw_data=false); rebuild it with with_raw_data=true");
  std::shared_lock lock(*mutex_);
  std::vector<Location> where = locate(ids, "ids");
  const size_t d = params_.dim;
  for (size_t i = 0; i < ids.size; ++i) {
    const float* row = partitions_[where[i].partition].raw_row(where[i].offset, d);
    std::copy(row, row + d, out + i * d);
  }
}

void IvfIndex::check_searchable(MatrixView<const float> queries, const SearchParams& sp) const {
  if (!trained_) throw std::logic_error("index is not built: call build() before search()");
  if (queries.cols != params_.dim) throw std::invalid_argument("queries: dimension mismatch");
  if (sp.nprobe == 0 || sp.nprobe > params_.nlist)
    throw std::invalid_argument("nprobe: must be in [1, nlist=" + std::to_string(params_.nlist) + "]");
  for (size_t i = 0; i < queries.rows * queries.cols; ++i)
    if (!std::isfinite(queries.data[i]))
      throw std::invalid_argument("queries: row " + std::to_string(i / queries.cols) +
                                  " contains NaN or infinity; pass finite values");
}

std::vector<std::pair<float, uint32_t>> IvfIndex::rank_partitions(const float* q, size_t count) const {
  const size_t nlist = params_.nlist, d = params_.dim;
  const bool l2 = params_.metric == Metric::kL2;
  std::unique_ptr<float[]> dist(new float[panel_count(nlist) * kPanelRows]);  // no zeroing: all written
  inner_products_panels({q, 1, d}, center_panels_.data(), nlist, dist.get());
  for (size_t c = 0; c < nlist; ++c)  // L2 up to the constant ||q||^2, which the L2 tables add back
    dist[c] = l2 ? center_norms_[c] - 2.f * dist[c] : -dist[c];
  return smallest_k(dist.get(), nlist, count);
}

void IvfIndex::search(MatrixView<const float> queries, const SearchParams& sp, const IdFilter& filter, int64_t* ids,
                      float* distances) const {
  check_searchable(queries, sp);
  if (sp.k == 0) throw std::invalid_argument("k: must be positive");
  if (sp.reorder_k != 0 && sp.reorder_k < sp.k) throw std::invalid_argument("reorder_k: must be >= k");
  const FastScanKernel& kernel = fastscan_kernel(active_simd_level());  // a bad ANISOSCAN_SIMD fails here
  std::vector<float> qp = prepare(queries);
  std::shared_lock lock(*mutex_);
  std::unique_ptr<Passes> passes;
  if (filter.active()) passes = std::make_unique<Passes>(partitions_, id_map(), filter);
  const size_t d = params_.dim, nq = queries.rows;
  // Blocks of queries, spread evenly over the threads.
  const size_t threads = static_cast<size_t>(resolve_threads(sp.threads));
  const size_t block = std::max<size_t>(1, std::min(kQueryBlock, (nq + threads - 1) / threads));
  parallel_for((nq + block - 1) / block, sp.threads, 1, [&](size_t b, size_t e, int) {
    for (size_t i = b; i < e; ++i) {
      const size_t first = i * block, count = std::min(block, nq - first);
      search_block({qp.data() + first * d, count, d}, sp, passes.get(), kernel, ids + first * sp.k,
                   distances + first * sp.k);
    }
  });
}

// Ranks the partitions of every query in the block, then visits each probed partition once,
// scanning it for all the block's queries that probe it (kQueriesPerPass per pass over the
// codes). The candidates equal those of one query at a time: a reservoir's top-k does not
// depend on the order of its pushes.
void IvfIndex::search_block(MatrixView<const float> q, const SearchParams& sp, const Passes* passes,
                            const FastScanKernel& kernel, int64_t* out_ids, float* out_dist) const {
  const size_t nq = q.rows, m = pq_.num_subspaces();
  const bool l2 = params_.metric == Metric::kL2, per_partition = tables_per_partition();
  const size_t keep = params_.with_raw_data ? std::max(sp.k, sp.reorder_k) : sp.k;
  std::vector<ReservoirTopK<uint64_t>> heaps(nq, ReservoirTopK<uint64_t>(keep));
  // One table per query, built once; or per partition: one per query of the current pass, rebuilt.
  std::vector<PreparedTable> tables(per_partition ? std::min(nq, FastScanKernel::kQueriesPerPass) : nq,
                                    PreparedTable(pq_, kernel));
  if (!per_partition)
    for (size_t i = 0; i < nq; ++i) tables[i].build(q.row(i), l2, nullptr);

  struct Visit {
    uint32_t rank;  // of the partition for this query
    uint32_t partition;
    uint32_t query;
    float center_distance;
  };
  std::vector<Visit> visits;
  visits.reserve(nq * sp.nprobe);
  for (size_t i = 0; i < nq; ++i) {
    const auto order = rank_partitions(q.row(i), sp.nprobe);
    for (uint32_t r = 0; r < order.size(); ++r) {
      const uint32_t p = order[r].second;
      if (partitions_[p].size() == 0 || (passes && passes->allowed_in(p) == 0)) continue;
      visits.push_back({r, p, static_cast<uint32_t>(i), order[r].first});
    }
  }
  // Every query's nearest partition first (its threshold then starts tight), then the rest
  // partition by partition, each shared by the queries probing it.
  std::sort(visits.begin(), visits.end(), [](const Visit& a, const Visit& b) {
    if ((a.rank == 0) != (b.rank == 0)) return a.rank == 0;
    if (a.rank == 0) return a.query < b.query;
    return a.partition != b.partition ? a.partition < b.partition : a.query < b.query;
  });

  // Scans partition p for visits [v, v + count), count <= kQueriesPerPass, all of partition p.
  constexpr size_t kPass = FastScanKernel::kQueriesPerPass;
  std::vector<TopKSink<Passes>> sinks;
  sinks.reserve(kPass);
  auto scan = [&](const Visit* v, size_t count) {
    const uint32_t p = v->partition;
    const Partition& part = partitions_[p];
    const uint8_t* luts[kPass];
    uint32_t limits[kPass];
    ScanSink* sink_ptrs[kPass];
    sinks.clear();
    for (size_t j = 0; j < count; ++j) {
      PreparedTable& table = tables[per_partition ? j : v[j].query];
      if (per_partition) table.build(q.row(v[j].query), true, centers_.data() + p * params_.dim);
      const float bias = score_bias(v[j].center_distance);
      sinks.emplace_back(heaps[v[j].query], table.lut(), bias, p, passes);
      luts[j] = table.prepared();
      limits[j] = sinks[j].limit();
      sink_ptrs[j] = &sinks[j];
    }
    kernel.scan(luts, count, m, part.codes(), part.size(), limits, sink_ptrs);
  };
  for (size_t a = 0; a < visits.size();) {
    size_t b = a;
    while (b < visits.size() && b - a < kPass && visits[b].partition == visits[a].partition) ++b;
    // The next partition's codes start loading while this one is scanned (the hardware
    // prefetcher only catches on within a partition).
    if (b < visits.size()) {
      const Partition& next = partitions_[visits[b].partition];
      prefetch_bytes(next.codes(), std::min(layout_.bytes_for(next.size()), kCodePrefetchBytes));
    }
    scan(&visits[a], b - a);
    a = b;
  }

  for (size_t i = 0; i < nq; ++i) {
    if (passes && heaps[i].size() < sp.k) {
      // The filter starves the candidates: visit further partitions, best first, until k.
      const auto all = rank_partitions(q.row(i), params_.nlist);
      for (size_t r = sp.nprobe; r < all.size() && heaps[i].size() < sp.k; ++r) {
        const uint32_t p = all[r].second;
        if (partitions_[p].size() == 0 || passes->allowed_in(p) == 0) continue;
        const Visit v{static_cast<uint32_t>(r), p, static_cast<uint32_t>(i), all[r].first};
        scan(&v, 1);
      }
    }
    finish_query(q.row(i), heaps[i], sp.k, out_ids + i * sp.k, out_dist + i * sp.k);
  }
}

// Re-ranks a query's candidates with the raw vectors (when kept) and writes its k results.
void IvfIndex::finish_query(const float* q, ReservoirTopK<uint64_t>& heap, size_t k, int64_t* out_ids,
                            float* out_dist) const {
  const size_t d = params_.dim;
  const auto candidates = heap.take();
  // The candidates' rows and ids lie scattered in memory: request them all before the first
  // is needed, so that the misses overlap instead of queueing one after another.
  for (const auto& c : candidates) {
    const Partition& part = partitions_[c.label >> 32];
    const size_t off = c.label & 0xFFFFFFFFu;
    __builtin_prefetch(part.ids() + off);
    if (params_.with_raw_data) prefetch_bytes(part.raw_row(off, d), d * sizeof(float));
  }
  TopK<int64_t> best(k);
  for (const auto& c : candidates) {
    const Partition& part = partitions_[c.label >> 32];
    const size_t off = c.label & 0xFFFFFFFFu;
    float dist = params_.with_raw_data ? internal_distance(params_.metric, q, part.raw_row(off, d), d) : c.distance;
    best.push(dist, part.ids()[off]);
  }
  auto result = best.take_sorted();
  for (size_t j = 0; j < k; ++j) {
    out_ids[j] = j < result.size() ? result[j].label : -1;
    out_dist[j] = j < result.size() ? to_milvus_distance(params_.metric, result[j].distance) : missing_distance(params_.metric);
  }
}

RangeResult IvfIndex::range_search(MatrixView<const float> queries, float radius, float range_filter,
                                   const SearchParams& sp, const IdFilter& filter) const {
  check_searchable(queries, sp);
  // Internal distances: keep [low, high).
  const bool l2 = params_.metric == Metric::kL2;
  const float low = l2 ? range_filter : -range_filter, high = l2 ? radius : -radius;
  if (!(low < high))
    throw std::invalid_argument(l2 ? "range_filter: must be smaller than radius for L2"
                                   : "range_filter: must be larger than radius for IP/COSINE");
  const FastScanKernel& kernel = fastscan_kernel(active_simd_level());
  std::vector<float> qp = prepare(queries);
  std::shared_lock lock(*mutex_);
  std::unique_ptr<Passes> passes;
  if (filter.active()) passes = std::make_unique<Passes>(partitions_, id_map(), filter);
  const size_t d = params_.dim, m = pq_.num_subspaces();
  std::vector<std::vector<std::pair<float, int64_t>>> hits(queries.rows);
  parallel_for(queries.rows, sp.threads, 1, [&](size_t b, size_t e, int) {
    PreparedTable table(pq_, kernel);  // buffers shared by this thread's queries
    for (size_t qi = b; qi < e; ++qi) {
      const float* q = qp.data() + qi * d;
      auto& out = hits[qi];
      if (!tables_per_partition() && !params_.with_raw_data) table.build(q, l2, nullptr);
      for (const auto& [center_distance, p] : rank_partitions(q, sp.nprobe)) {
        const Partition& part = partitions_[p];
        if (params_.with_raw_data) {  // exact distances: the range answer is exact
          for (size_t i = 0; i < part.size(); ++i) {
            if (passes && !passes->test(p, i)) continue;
            float dist = internal_distance(params_.metric, q, part.raw_row(i, d), d);
            if (dist >= low && dist < high) out.emplace_back(dist, part.ids()[i]);
          }
        } else if (part.size() > 0) {
          if (tables_per_partition()) table.build(q, true, centers_.data() + p * d);
          const float bias = score_bias(center_distance);
          RangeSink<Passes> sink(out, table.lut(), bias, low, high, part, p, passes.get());
          kernel.scan_one(table.prepared(), m, part.codes(), part.size(), sink.limit(), sink);
        }
      }
      std::sort(out.begin(), out.end());
    }
  });
  RangeResult r;
  r.lims.push_back(0);
  for (const auto& h : hits) {
    for (const auto& [dist, id] : h) {
      r.ids.push_back(id);
      r.distances.push_back(to_milvus_distance(params_.metric, dist));
    }
    r.lims.push_back(r.ids.size());
  }
  return r;
}

void IvfIndex::derive_center_tables() {
  const size_t d = params_.dim, nlist = params_.nlist;
  center_panels_ = to_panels({centers_.data(), nlist, d});
  center_norms_ = row_norms_sq({centers_.data(), nlist, d});
}

size_t IvfIndex::memory_bytes() const {
  std::shared_lock lock(*mutex_);
  size_t bytes = sizeof(*this) +
                 (centers_.capacity() + center_panels_.capacity() + center_norms_.capacity()) * sizeof(float) +
                 pq_.codebooks().capacity() * sizeof(float) + partitions_.capacity() * sizeof(Partition);
  for (const auto& p : partitions_) bytes += p.owned_bytes();
  return bytes + id_map_.memory_bytes() + IndexFile::mapped_bytes(mapping_);
}

void IvfIndex::save(const std::string& path) const {
  std::shared_lock lock(*mutex_);
  IndexFile::write(*this, path);
}

IvfIndex IvfIndex::load(const std::string& path, bool mmap, bool verify_checksum) {
  return IndexFile::read(path, mmap, verify_checksum);
}

}  // namespace anisoscan
