// Building and changing the index: training, adds, deletes, the id map, memory, files.
#include "ivf_index.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_set>

#include "anisotropic_threshold.h"
#include "distances.h"
#include "index_file.h"
#include "kmeans.h"
#include "params_file.h"
#include "parallel.h"
#include "soar.h"

namespace anisoscan {

// The id maps locate copies by slot, and a spilling index has 2 x nlist slots.
static_assert(2 * kMaxNlist <= size_t{1} << IdMap::kPartitionBits, "id map slots cannot address every partition");

namespace {

// The quantizer's training knobs from the index's parameters (the rest keep their defaults).
PQTrainParams pq_train_params(const IndexParams& p) {
  PQTrainParams t;
  t.sub_dim = p.sub_dim;
  t.anisotropic_threshold = p.anisotropic_threshold.value_or(0.0);
  t.exact_eta = p.exact_eta;
  t.anisotropic_codebooks = p.anisotropic_codebooks;
  t.iterations = p.pq_iterations;
  t.kmeans_iterations = p.pq_init_iters;
  t.threads = p.threads;
  return t;
}

// `count` of the rows [0, n) drawn without replacement, in increasing order; all of them
// (drawing nothing) when count >= n.
std::vector<size_t> sample_rows(size_t n, size_t count, std::mt19937_64& rng) {
  std::vector<size_t> rows(n);
  std::iota(rows.begin(), rows.end(), 0);
  if (count < n) {
    std::shuffle(rows.begin(), rows.end(), rng);
    rows.resize(count);
    std::sort(rows.begin(), rows.end());
  }
  return rows;
}

std::vector<float> gather_rows(MatrixView<const float> x, const std::vector<size_t>& rows) {
  std::vector<float> out(rows.size() * x.cols);
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(x.row(rows[i]), x.cols, out.begin() + i * x.cols);
  return out;
}

std::string some_ids(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size() && i < 5; ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + (ids.size() > 5 ? ", ...]" : "]");
}

}  // namespace

IvfIndex::IvfIndex(const IndexParams& params)
    : params_(resolved(params)),
      pq_(params_.dim, params_.sub_dim),
      layout_{pq_.num_subspaces()},
      refine_(params_.refine_type, params_.dim),
      mutex_(std::make_unique<std::shared_mutex>()),
      id_map_mutex_(std::make_unique<std::mutex>()) {}

IndexParams IvfIndex::resolved(IndexParams p) {
  resolve(p);
  return p;
}

IvfIndex::IvfIndex(IvfIndex&&) noexcept = default;
IvfIndex& IvfIndex::operator=(IvfIndex&&) noexcept = default;
IvfIndex::~IvfIndex() = default;

size_t IvfIndex::size() const {
  std::shared_lock lock(*mutex_);
  return size_locked();
}

size_t IvfIndex::size_locked() const {
  size_t n = 0;
  for (size_t p = 0; p < params_.nlist && p < partitions_.size(); ++p) n += partitions_[p].size();
  return n;
}

IvfIndex::PreparedRows::PreparedRows(MatrixView<const float> x, bool normalize) : rows_(x) {
  if (!normalize) return;
  copy_.assign(x.data, x.data + x.rows * x.cols);
  normalize_rows({copy_.data(), x.rows, x.cols});
  rows_ = {copy_.data(), x.rows, x.cols};
}

IvfIndex::PreparedRows IvfIndex::prepare(MatrixView<const float> x) const {
  return PreparedRows(x, params_.metric == Metric::kCosine);
}

void IvfIndex::train(MatrixView<const float> x) {
  const size_t d = params_.dim;
  if (x.cols != d) throw std::invalid_argument("vectors: dimension mismatch");
  if (x.rows < params_.nlist)
    throw std::invalid_argument("nlist: " + std::to_string(params_.nlist) +
                                " partitions need at least as many vectors, got " + std::to_string(x.rows) +
                                "; lower nlist or add more vectors");
  // Sample rows for training (at least nlist of them).
  const size_t ns = std::min(x.rows, std::max(params_.training_sample_size, params_.nlist));
  std::mt19937_64 rng(params_.seed);
  std::vector<float> sample = gather_rows(x, sample_rows(x.rows, ns, rng));
  if (params_.metric == Metric::kCosine) normalize_rows({sample.data(), ns, d});
  MatrixView<const float> sv{sample.data(), ns, d};

  KMeansParams kp;
  kp.k = params_.nlist;
  kp.iterations = params_.kmeans_iters;
  kp.spherical = by_direction();
  kp.seed = params_.seed;
  kp.threads = params_.threads;
  std::vector<float> centers = kmeans(sv, kp);

  std::vector<int32_t> assign(ns);
  assign_nearest(sv, {centers.data(), params_.nlist, d}, kp.spherical, assign.data(), nullptr, params_.threads);
  std::vector<float> targets =
      code_targets(sv, assign.data(), centers.data());
  const double threshold =
      params_.anisotropic_threshold ? *params_.anisotropic_threshold
                                    : default_threshold(params_.metric, sv, centers.data(), assign.data(), x.rows,
                                                        params_.exact_eta, params_.threads);
  PQTrainParams pq_params = pq_train_params(params_);
  pq_params.anisotropic_threshold = threshold;
  ProductQuantizer pq(d, params_.sub_dim);
  // The codebooks (16 codewords per sub-space) may train on fewer rows than the partitions.
  const std::vector<size_t> pick = sample_rows(ns, params_.pq_training_sample_size, rng);
  if (pick.size() < ns) {
    const std::vector<float> pq_targets = gather_rows({targets.data(), ns, d}, pick), pq_rows = gather_rows(sv, pick);
    pq.train({pq_targets.data(), pick.size(), d}, {pq_rows.data(), pick.size(), d}, pq_params);
  } else {
    pq.train({targets.data(), ns, d}, sv, pq_params);
  }
  RefineCodec refine(params_.refine_type, d);
  refine.train(sv);

  std::unique_lock lock(*mutex_);
  params_.anisotropic_threshold = threshold;
  set_centers(centers);
  pq_ = std::move(pq);
  refine_ = std::move(refine);
  partitions_.assign(slot_count(), Partition{});
  first_copies_ = LazyIdMap{};
  second_copies_ = LazyIdMap{};
  mapping_.reset();
  trained_ = true;
}

void IvfIndex::add(MatrixView<const float> x, const int64_t* ids, bool replace) {
  if (!trained_) throw std::logic_error("index is not trained: call build() or train() first");
  const size_t d = params_.dim, n = x.rows, m = pq_.num_subspaces();
  if (x.cols != d) throw std::invalid_argument("vectors: dimension mismatch");
  if (n == 0) return;
  // Encoding reads only what training fixed, so it runs before taking the lock.
  const PreparedRows prepared = prepare(x);
  const MatrixView<const float>& xv = prepared.rows();
  const std::vector<int32_t> assign = assign_rows(xv);
  std::vector<float> targets = code_targets(xv, assign.data(), center_rows_.data());
  std::vector<uint8_t> codes(n * m);
  pq_.encode({targets.data(), n, d}, xv, pq_train_params(params_), codes.data());
  const size_t rb = raw_row_bytes();
  std::vector<uint8_t> raw(n * rb);
  for (size_t i = 0; rb && i < n; ++i) refine_.encode(xv.row(i), raw.data() + i * rb);
  std::vector<int32_t> spill(spilling() ? n : 0);
  std::vector<uint8_t> spill_codes(spill.size() * m);
  if (spilling()) {
    std::vector<float> made;  // SOAR scores every row against every center
    soar_assign(xv, assign.data(), center_rows_.data(), panels_or_made(made), center_norms_.data(), params_.nlist,
                params_.soar_lambda, params_.threads, spill.data());
    const std::vector<float> spill_targets = code_targets(xv, spill.data(), center_rows_.data());
    pq_.encode({spill_targets.data(), n, d}, xv, pq_train_params(params_), spill_codes.data());
  }

  std::unique_lock lock(*mutex_);
  std::unordered_set<int64_t> incoming(ids, ids + n);
  if (incoming.size() != n) throw std::invalid_argument("ids: duplicate ids in one call; each id may appear once");
  // A first add (a build) has nothing to collide with: the map is left to be built on first use.
  std::vector<int64_t> present;
  if (size_locked() > 0 || first_copies_.built)
    for (size_t i = 0; i < n; ++i)
      if (id_map().find(ids[i], partitions_)) present.push_back(ids[i]);
  if (!present.empty()) {
    if (!replace)
      throw std::invalid_argument("ids: " + std::to_string(present.size()) + " id(s) already in the index, e.g. " +
                                  some_ids(present) + "; delete them first or upsert");
    remove_locked({present.data(), present.size()});
  }
  append_rows(assign.data(), 0, ids, n, codes.data(), raw.data(), first_copies_);
  if (spilling()) append_rows(spill.data(), params_.nlist, ids, n, spill_codes.data(), nullptr, second_copies_);
  first_copies_for_rerank();  // searches need it (if any): built here, not in the first query's time
}

void IvfIndex::append_rows(const int32_t* where, size_t slot_base, const int64_t* ids, size_t n, const uint8_t* codes,
                           const uint8_t* raw, LazyIdMap& map) {
  const size_t m = pq_.num_subspaces(), rb = raw ? row_bytes_of(slot_base) : 0;
  // Reserve exactly so that a build allocates no growth slack.
  std::vector<size_t> incoming(params_.nlist, 0);
  for (size_t i = 0; i < n; ++i) ++incoming[where[i]];
  for (size_t p = 0; p < params_.nlist; ++p)
    if (incoming[p]) partitions_[slot_base + p].reserve(layout_, partitions_[slot_base + p].size() + incoming[p], rb);
  for (size_t i = 0; i < n; ++i) {
    const size_t slot = slot_base + static_cast<size_t>(where[i]);
    Partition& part = partitions_[slot];
    part.append(layout_, ids[i], codes + i * m, rb ? raw + i * rb : nullptr, rb);
    if (map.built)
      map.map.insert(ids[i], {static_cast<uint32_t>(slot), static_cast<uint32_t>(part.size() - 1)}, partitions_);
  }
}

std::vector<float> IvfIndex::code_targets(MatrixView<const float> x, const int32_t* assign,
                                          const float* centers) const {
  const size_t d = x.cols;
  std::vector<float> targets(x.data, x.data + x.rows * d);
  if (!params_.by_residual) return targets;
  for (size_t i = 0; i < x.rows; ++i) {
    const float* c = centers + static_cast<size_t>(assign[i]) * d;
    for (size_t t = 0; t < d; ++t) targets[i * d + t] -= c[t];
  }
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

const IdMap& IvfIndex::built(LazyIdMap& map, size_t first, size_t last) const {
  std::lock_guard guard(*id_map_mutex_);
  if (!map.built) {  // an untrained index has no slots
    map.map.rebuild(partitions_, std::min(first, partitions_.size()), std::min(last, partitions_.size()));
    map.built = true;
  }
  return map.map;
}

const uint8_t* IvfIndex::raw_row_at(size_t slot, size_t offset, const IdMap* first_copies) const {
  const size_t rb = raw_row_bytes();
  if (!holds_spilled_copies(slot)) return partitions_[slot].raw_row(offset, rb);
  const Location at = *first_copies->find(partitions_[slot].ids()[offset], partitions_);
  return partitions_[at.partition].raw_row(at.offset, rb);
}

void IvfIndex::remove(Span<const int64_t> ids) {
  if (!trained_) throw std::logic_error("index is not built: nothing to delete");
  std::unique_lock lock(*mutex_);
  remove_locked(ids);
}

void IvfIndex::remove_locked(Span<const int64_t> ids) {
  std::vector<Location> where = locate(ids, "ids");
  std::vector<Location> second;
  if (spilling()) {
    const IdMap& map = spill_map();
    for (size_t i = 0; i < ids.size; ++i)
      if (auto at = map.find(ids[i], partitions_)) second.push_back(*at);
  }
  remove_at(std::move(where), first_copies_.map);
  remove_at(std::move(second), second_copies_.map);
}

void IvfIndex::remove_at(std::vector<Location> where, IdMap& map) {
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
    map.erase(part.ids()[loc.offset], partitions_);
    if (loc.offset != last) map.relocate(part.ids()[last], loc, partitions_);
    part.swap_remove(layout_, loc.offset, row_bytes_of(loc.partition));
  }
}

void IvfIndex::compact() {
  std::unique_lock lock(*mutex_);
  for (auto& part : partitions_) part.shrink();
  // Built again when next needed, sized for what remains.
  first_copies_ = LazyIdMap{};
  second_copies_ = LazyIdMap{};
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
  if (!refine_.exact())
    throw std::invalid_argument(
        "get_vectors: this index keeps an int8 copy of the vectors (refine_type=SQ8), not the vectors; "
        "rebuild it with refine_type=FP32");
  std::shared_lock lock(*mutex_);
  std::vector<Location> where = locate(ids, "ids");
  const size_t d = params_.dim, rb = raw_row_bytes();
  for (size_t i = 0; i < ids.size; ++i)
    refine_.decode(partitions_[where[i].partition].raw_row(where[i].offset, rb), out + i * d);
}

void IvfIndex::set_centers(const std::vector<float>& centers) {
  const MatrixView<const float> rows{centers.data(), params_.nlist, params_.dim};
  center_norms_ = row_norms_sq(rows);
  assignment_terms_ = assignment_terms(rows, by_direction());
  const size_t panel_bytes = panel_count(rows.rows) * kPanelRows * rows.cols * sizeof(float);
  const bool first_pass = panel_bytes >= kInt8RankingMinBytes && int8_panel_products();
  int8_centers_ = first_pass ? Int8Centers(rows) : Int8Centers();
  // After the integer pass the exact products are few and read the rows: no float panels.
  center_panels_ = int8_centers_.usable() ? std::vector<float>() : to_panels(rows);
  center_rows_ = centers;
}

size_t IvfIndex::memory_bytes() const {
  std::shared_lock lock(*mutex_);
  size_t bytes = sizeof(*this) +
                 (center_panels_.capacity() + center_rows_.capacity() + center_norms_.capacity() +
                  assignment_terms_.capacity()) * sizeof(float) +
                 int8_centers_.memory_bytes() +
                 (pq_.codebooks().capacity() + refine_.lo().capacity() + refine_.scale().capacity()) * sizeof(float) +
                 partitions_.capacity() * sizeof(Partition);
  for (const auto& p : partitions_) bytes += p.owned_bytes();
  std::lock_guard maps(*id_map_mutex_);  // a search may be building one
  return bytes + first_copies_.map.memory_bytes() + second_copies_.map.memory_bytes() +
         (mapping_ ? mapping_->size() : 0);
}

// The payload of an index file (the container is index_file.h's): dim, metric, the
// parameters (params_file.h), whether trained, then the centers, the codebooks, with
// refine_type SQ8 its offsets and scales, and each slot's ids, codes and re-rank rows
// (float32 arrays for FP32, byte arrays for SQ8; empty without raw data and for spilled copies).
void IvfIndex::save(const std::string& path) const {
  std::shared_lock lock(*mutex_);
  const IndexParams& ip = params_;
  IndexFileWriter w;
  w.put<uint64_t>(ip.dim);
  w.put<uint32_t>(static_cast<uint32_t>(ip.metric));
  write_params<ScannConfig>(w, ip);
  w.put<uint8_t>(trained_);
  if (trained_) {
    w.put_array(center_rows_.data(), center_rows_.size());
    w.put_array(pq_.codebooks().data(), pq_.codebooks().size());
    const bool sq8 = ip.refine_type == RefineType::kSQ8;
    if (sq8) {
      w.put_array(refine_.lo().data(), ip.dim);
      w.put_array(refine_.scale().data(), ip.dim);
    }
    for (size_t slot = 0; slot < partitions_.size(); ++slot) {
      const Partition& part = partitions_[slot];
      const size_t values_per_row = row_bytes_of(slot) ? ip.dim : 0;
      w.put_array(part.ids(), part.size());
      w.put_array(part.codes(), layout_.bytes_for(part.size()));
      if (sq8)
        w.put_array(part.raw(), part.size() * values_per_row);
      else
        w.put_array(reinterpret_cast<const float*>(part.raw()), part.size() * values_per_row);
    }
  }
  w.finish(path);
}

IvfIndex IvfIndex::load(const std::string& path, bool mmap, bool verify_checksum) {
  IndexFileReader r(path, mmap, verify_checksum);
  IndexParams ip;
  ip.dim = r.get<uint64_t>();
  uint32_t metric = r.get<uint32_t>();
  if (metric > 2) r.fail("unknown metric code");
  ip.metric = static_cast<Metric>(metric);
  if (r.version() >= 5)
    read_params<ScannConfig>(r, ip);
  else
    read_fixed_params(r, ip);
  std::unique_ptr<IvfIndex> index;
  try {
    index = std::make_unique<IvfIndex>(ip);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("bad parameters: ") + e.what());
  }
  index->trained_ = r.get<uint8_t>();
  if (index->trained_) {
    const size_t d = ip.dim;
    index->set_centers(r.copy_array<float>(ip.nlist * d));
    index->pq_.set_codebooks(r.copy_array<float>(index->pq_.codebooks().size()));
    const bool sq8 = ip.refine_type == RefineType::kSQ8;
    if (sq8) {
      std::vector<float> lo = r.copy_array<float>(d);
      index->refine_.set_ranges(std::move(lo), r.copy_array<float>(d));
    }
    index->partitions_.resize(index->slot_count());
    for (size_t slot = 0; slot < index->partitions_.size(); ++slot) {
      Partition& part = index->partitions_[slot];
      const size_t rb = index->row_bytes_of(slot), values_per_row = rb ? d : 0;
      const uint64_t n = r.peek_count();
      if (n > r.payload_bytes() / 8) r.fail("implausible partition size");
      const int64_t* ids = r.array<int64_t>(n);
      const uint8_t* codes = r.array<uint8_t>(index->layout_.bytes_for(n));
      const auto* raw = sq8 ? r.array<uint8_t>(n * values_per_row)
                            : reinterpret_cast<const uint8_t*>(r.array<float>(n * values_per_row));
      part.view(ids, codes, rb && n ? raw : nullptr, n);
      if (!r.in_place()) part.own(index->layout_, rb);
    }
    if (r.in_place()) index->mapping_ = r.mapping();
  }
  if (!r.done()) r.fail("trailing bytes in payload");
  return std::move(*index);
}

}  // namespace anisoscan
