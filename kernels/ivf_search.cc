// Top-k search: partitions ranked per query, blocks of queries scanned together, candidates
// re-ranked with the raw vectors when the index keeps them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "distances.h"
#include "ivf_scan.h"
#include "parallel.h"
#include "topk.h"

namespace anisoscan {

namespace {

// Candidates are labelled by location (slot << 32 | offset) until re-ranking.
uint64_t location_label(size_t slot, size_t offset) { return (static_cast<uint64_t>(slot) << 32) | offset; }

// How much of the next partition's codes to request ahead of scanning it.
constexpr size_t kCodePrefetchBytes = 1024;
// How much of each candidate's re-rank row to request ahead: the hardware streams the rest
// once a row's first lines are asked for, and requesting whole rows (48 lines at 768-d)
// stalled on the full miss queue (mpnet, alternating builds: +1-5% batched and alone).
constexpr size_t kRowPrefetchBytes = 1024;

// Asks for every cache line of [p, p + bytes).
void prefetch_bytes(const void* p, size_t bytes) {
  constexpr uintptr_t kLine = 64;
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~(kLine - 1);
  for (uintptr_t a = first; a < reinterpret_cast<uintptr_t>(p) + bytes; a += kLine)
    __builtin_prefetch(reinterpret_cast<const void*>(a));
}

// A probe's visit of one slot, in search_block.
struct Visit {
  uint32_t rank;  // of the partition for this query
  uint32_t slot;  // the partition, or its spilled copies
  uint32_t query;
  float center_distance;
};

float missing_distance(Metric metric) {
  return metric == Metric::kL2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
}


// Feeds the candidate reservoir from a partition scan, skipping vectors the filter rejects.
// The limit handed back to the kernel tightens only when the reservoir's threshold does.
template <typename Passes>
class TopKSink final : public ScanSink {
 public:
  TopKSink(ReservoirTopK<uint64_t>& top, const LutScale& lut, float bias, size_t slot, const Passes* passes)
      : top_(top), lut_(lut), bias_(bias), slot_(slot), passes_(passes) {
    update_limit();
  }
  uint32_t limit() const { return limit_; }

  uint32_t push(size_t index, uint16_t score) override {
    if (passes_ && !passes_->test(slot_, index)) return limit_;
    top_.push(bias_ + lut_.distance(score), location_label(slot_, index));
    if (top_.worst() != worst_) update_limit();
    return limit_;
  }

 private:
  void update_limit() {
    worst_ = top_.worst();
    limit_ = lut_.limit_for(worst_ - bias_);
  }

  ReservoirTopK<uint64_t>& top_;
  const LutScale& lut_;
  float bias_;
  size_t slot_;
  const Passes* passes_;
  float worst_;
  uint32_t limit_;
};

}  // namespace

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

std::vector<IvfIndex::Ranking> IvfIndex::rank_partitions(MatrixView<const float> q, size_t count) const {
  const size_t nlist = params_.nlist, stride = panel_count(nlist) * kPanelRows;
  // Where the centers are many and few of them wanted, a first pass in integers rules most
  // centers out and only the rest get exact float products (rank_candidates). A query alone
  // streams a quarter of the bytes so; a block of queries does 3/8 of the multiplies (AVX2:
  // 64 products per 3 integer multiplies against 8 per float multiply-add). Each query's
  // ranking is the exact one, whatever the block, and rows are ranked an L2-sized chunk of
  // products at a time.
  const Int8PanelProducts first_pass =
      int8_centers_.usable() && count != 0 && count * 4 <= nlist ? int8_panel_products() : nullptr;
  // Kept between chunks and calls: nothing allocated per query.
  thread_local std::vector<float> products;
  thread_local std::vector<uint8_t> codes;
  thread_local std::vector<int32_t> sums;
  thread_local std::vector<Int8Query> quantized;
  std::vector<Ranking> ranked(q.rows);
  auto rank_exactly = [&](MatrixView<const float> rows, Ranking* out) {
    products.resize(rows.rows * stride);
    center_products(rows, products.data());
    for (size_t i = 0; i < rows.rows; ++i) out[i] = rank_by_products(products.data() + i * stride, count);
  };
  const size_t most = std::max<size_t>(1, kBlockProductFloats / stride);
  for (size_t first = 0; first < q.rows; first += most) {
    const MatrixView<const float> chunk{q.row(first), std::min(most, q.rows - first), q.cols};
    if (first_pass == nullptr) {
      rank_exactly(chunk, &ranked[first]);
      continue;
    }
    const size_t dims = int8_centers_.dims();
    codes.resize(chunk.rows * dims);
    sums.resize(chunk.rows * stride);
    quantized.resize(chunk.rows);
    for (size_t i = 0; i < chunk.rows; ++i) quantized[i] = quantize_query(chunk.row(i), q.cols, codes.data() + i * dims);
    first_pass(codes.data(), chunk.rows, dims, int8_centers_.panels(), nlist, sums.data());
    for (size_t i = 0; i < chunk.rows; ++i)
      if (int8_centers_.bounded(quantized[i]))
        ranked[first + i] = rank_candidates(chunk.row(i), quantized[i], sums.data() + i * stride, count);
      else  // its products could overflow float: exactly only
        rank_exactly({chunk.row(i), 1, q.cols}, &ranked[first + i]);
  }
  return ranked;
}

IvfIndex::Ranking IvfIndex::rank_candidates(const float* q, const Int8Query& iq, const int32_t* sums,
                                            size_t count) const {
  const size_t nlist = params_.nlist, d = params_.dim;
  thread_local std::vector<float> lower, upper, exact, dist;
  thread_local std::vector<uint32_t> candidates;
  // Bounded distances: every center whose lowest possible distance beats the count-th smallest
  // highest one is a candidate; the exact ranking's first `count` are among them (each is at
  // most that count-th highest bound).
  lower.resize(nlist);
  upper.resize(nlist);
  for (size_t c = 0; c < nlist; ++c) {
    const float product = int8_centers_.product(c, sums[c], iq), dist = ranking_distance(c, product);
    // The products' bound, the rounding of the distance itself (of either product), and an
    // absolute term for products below float's normal range (subnormal or flushed to zero).
    const float slack = ranking_slope(c) * int8_centers_.error_bound(c, iq) +
                        0x1p-22f * (std::fabs(dist) + 2.f * std::fabs(product)) + static_cast<float>(d + 2) * 0x1p-124f;
    lower[c] = dist - slack;
    upper[c] = dist + slack;
  }
  const float threshold = smallest_k(upper.data(), nlist, count).back().first;  // branch-free bins, unlike nth_element
  // Branch-free: a few candidates among hundreds of centers, each a misprediction otherwise.
  candidates.resize(nlist);
  size_t m = 0;
  for (size_t c = 0; c < nlist; ++c) {
    candidates[m] = static_cast<uint32_t>(c);
    m += lower[c] <= threshold;
  }
  // The candidates' exact products, summed as the product with all centers sums each: the
  // same ranking as without the first pass.
  exact.resize(m);
  inner_products_rows(q, center_rows_.data(), d, candidates.data(), m, exact.data());
  dist.resize(m);
  for (size_t i = 0; i < m; ++i) dist[i] = ranking_distance(candidates[i], exact[i]);
  auto ranked = smallest_k(dist.data(), m, count);  // ties to the smaller index: candidates ascend
  for (auto& r : ranked) r = {-exact[r.second], candidates[r.second]};
  return ranked;
}

const float* IvfIndex::panels_or_made(std::vector<float>& made) const {
  if (!center_panels_.empty()) return center_panels_.data();
  made = to_panels({center_rows_.data(), params_.nlist, params_.dim});
  return made.data();
}

void IvfIndex::center_products(MatrixView<const float> q, float* out) const {
  const size_t nlist = params_.nlist, stride = panel_count(nlist) * kPanelRows;
  // Where panels are not kept, many queries share panels made for the call: making them costs
  // about what ten queries' products from the rows do, which run at a third of the panels' rate.
  if (!center_panels_.empty() || q.rows >= kRowsForCallPanels) {
    std::vector<float> made;
    return inner_products_panels(q, panels_or_made(made), nlist, out);
  }
  thread_local std::vector<uint32_t> all;
  all.resize(nlist);
  std::iota(all.begin(), all.end(), 0u);
  for (size_t i = 0; i < q.rows; ++i)
    inner_products_rows(q.row(i), center_rows_.data(), q.cols, all.data(), nlist, out + i * stride);
}

std::vector<int32_t> IvfIndex::assign_rows(MatrixView<const float> x) const {
  std::vector<int32_t> assign(x.rows);
  if (!center_panels_.empty()) {  // a blocked product and a vectorized argmin, no ranking's bookkeeping
    assign_nearest_panels(x, center_panels_.data(), assignment_terms_.data(), params_.nlist, by_direction(),
                          assign.data(), nullptr, params_.threads);
    return assign;
  }
  parallel_for(x.rows, params_.threads, kProductRows, [&](size_t begin, size_t end, int) {
    for (size_t b = begin; b < end; b += kProductRows) {
      const size_t nb = std::min(kProductRows, end - b);
      const std::vector<Ranking> ranked = rank_partitions({x.row(b), nb, x.cols}, 1);
      for (size_t i = 0; i < nb; ++i) assign[b + i] = static_cast<int32_t>(ranked[i][0].second);
    }
  });
  return assign;
}

IvfIndex::Ranking IvfIndex::rank_by_products(const float* products, size_t count) const {
  const size_t nlist = params_.nlist;
  thread_local std::vector<float> dist;
  dist.resize(nlist);
  for (size_t c = 0; c < nlist; ++c) dist[c] = ranking_distance(c, products[c]);
  auto ranked = smallest_k(dist.data(), nlist, count);
  for (auto& r : ranked) r.first = -products[r.second];
  return ranked;
}

void IvfIndex::search(MatrixView<const float> queries, const SearchParams& sp, const IdFilter& filter, int64_t* ids,
                      float* distances) const {
  check_searchable(queries, sp);
  if (sp.k == 0) throw std::invalid_argument("k: must be positive");
  if (sp.reorder_k != 0 && sp.reorder_k < sp.k) throw std::invalid_argument("reorder_k: must be >= k");
  const FastScanKernel& kernel = fastscan_kernel(active_simd_level());  // a bad ANISOSCAN_SIMD fails here
  const PreparedRows qp = prepare(queries);
  std::shared_lock lock(*mutex_);
  const std::unique_ptr<Passes> passes = passes_for(filter);
  const IdMap* first_copies = first_copies_for_rerank();
  const size_t d = params_.dim, nq = queries.rows;
  // Blocks of queries, as large as allowed and the same number for each thread.
  const size_t threads = static_cast<size_t>(resolve_threads(sp.threads)), per_thread = (nq + threads - 1) / threads;
  const size_t most = queries_per_block(sp, kernel);
  const size_t blocks_each = std::max<size_t>(1, (per_thread + most - 1) / most);
  const size_t block = std::max<size_t>(1, (per_thread + blocks_each - 1) / blocks_each);
  parallel_for((nq + block - 1) / block, sp.threads, 1, [&](size_t b, size_t e, int) {
    for (size_t i = b; i < e; ++i) {
      const size_t first = i * block, count = std::min(block, nq - first);
      search_block({qp.rows().row(first), count, d}, sp, passes.get(), first_copies, kernel, ids + first * sp.k,
                   distances + first * sp.k);
    }
  });
}

size_t IvfIndex::candidates_needed(const SearchParams& sp) const {
  // A spilled vector can take two places among the candidates: twice k of them hold k distinct.
  return spilling() ? 2 * sp.k : sp.k;
}

size_t IvfIndex::candidates_kept(const SearchParams& sp) const {
  return std::max(candidates_needed(sp), params_.with_raw_data ? sp.reorder_k : 0);
}

size_t IvfIndex::queries_per_block(const SearchParams& sp, const FastScanKernel& kernel) const {
  const size_t table = tables_per_partition() ? 0 : sizeof(PreparedTable) + kernel.prepared_lut_bytes(layout_.num_subspaces);
  const size_t visits = sp.nprobe * slot_count() / params_.nlist * sizeof(Visit);
  const size_t per_query = table + ReservoirTopK<uint64_t>::bytes_for(candidates_kept(sp)) + visits;
  return std::max<size_t>(1, kBlockScratchBytes / per_query);
}

std::unique_ptr<IvfIndex::Passes> IvfIndex::passes_for(const IdFilter& filter) const {
  if (!filter.active()) return nullptr;
  return std::make_unique<Passes>(partitions_, id_map(), spilling() ? &spill_map() : nullptr, filter);
}

// Ranks the partitions of every query in the block, then visits each probed partition once,
// scanning it for all the block's queries that probe it (kQueriesPerPass per pass over the
// codes). The candidates equal those of one query at a time: a reservoir's top-k does not
// depend on the order of its pushes.
void IvfIndex::search_block(MatrixView<const float> q, const SearchParams& sp, const Passes* passes,
                            const IdMap* first_copies, const FastScanKernel& kernel, int64_t* out_ids,
                            float* out_dist) const {
  const size_t nq = q.rows, m = pq_.num_subspaces();
  const bool l2 = params_.metric == Metric::kL2, per_partition = tables_per_partition();
  const size_t needed = candidates_needed(sp), keep = candidates_kept(sp);
  // The thread's candidate reservoirs and tables, kept between blocks and calls: once grown
  // (to queries_per_block() at most), a block allocates none. Every reservoir is reset, the
  // unused ones too, so that none keeps the storage of an earlier, larger reorder_k.
  thread_local std::vector<ReservoirTopK<uint64_t>> heaps;
  thread_local std::vector<PreparedTable> tables;
  if (heaps.size() < nq) heaps.resize(nq, ReservoirTopK<uint64_t>(keep));
  for (auto& heap : heaps) heap.reset(keep);
  // One table per query, built once; or per partition: one per query of the current pass, rebuilt.
  const size_t table_count = per_partition ? std::min(nq, FastScanKernel::kQueriesPerPass) : nq;
  if (tables.size() < table_count) tables.resize(table_count);
  if (!per_partition)
    for (size_t i = 0; i < nq; ++i) tables[i].build(pq_, kernel, q.row(i), l2, nullptr);

  std::vector<Visit> visits;
  visits.reserve(nq * sp.nprobe * slot_count() / params_.nlist);
  // A probe of partition p visits its slots, skipping those empty or filtered out.
  auto probe = [&](uint32_t rank, uint32_t p, uint32_t query, float center_distance, auto&& use) {
    for_each_slot(p, [&](size_t slot) {
      if (partitions_[slot].size() != 0 && (!passes || passes->allowed_in(slot) != 0))
        use(Visit{rank, static_cast<uint32_t>(slot), query, center_distance});
    });
  };
  auto push_visit = [&visits](const Visit& v) { visits.push_back(v); };
  auto probe_all = [&](uint32_t query, const Ranking& order) {
    for (uint32_t r = 0; r < order.size(); ++r) probe(r, order[r].second, query, order[r].first, push_visit);
  };
  const std::vector<Ranking> ranked = rank_partitions(q, sp.nprobe);
  for (size_t i = 0; i < nq; ++i) probe_all(static_cast<uint32_t>(i), ranked[i]);
  // Every query's nearest partition first (its threshold then starts tight), then the rest
  // partition by partition, each shared by the queries probing it.
  std::sort(visits.begin(), visits.end(), [](const Visit& a, const Visit& b) {
    if ((a.rank == 0) != (b.rank == 0)) return a.rank == 0;
    if (a.rank == 0) return a.query < b.query;
    return a.slot != b.slot ? a.slot < b.slot : a.query < b.query;
  });

  // Scans one slot for visits [v, v + count), count <= kQueriesPerPass, all of that slot.
  constexpr size_t kPass = FastScanKernel::kQueriesPerPass;
  std::vector<TopKSink<Passes>> sinks;
  sinks.reserve(kPass);
  auto scan = [&](const Visit* v, size_t count) {
    const uint32_t slot = v->slot;
    const Partition& part = partitions_[slot];
    const uint8_t* luts[kPass];
    uint32_t limits[kPass];
    ScanSink* sink_ptrs[kPass];
    sinks.clear();
    for (size_t j = 0; j < count; ++j) {
      PreparedTable& table = tables[per_partition ? j : v[j].query];
      if (per_partition) table.build(pq_, kernel, q.row(v[j].query), true, center(slot % params_.nlist));
      const float bias = score_bias(v[j].center_distance);
      sinks.emplace_back(heaps[v[j].query], table.scale(), bias, slot, passes);
      luts[j] = table.prepared();
      limits[j] = sinks[j].limit();
      sink_ptrs[j] = &sinks[j];
    }
    kernel.scan(luts, count, m, part.codes(), part.size(), limits, sink_ptrs);
  };
  for (size_t a = 0; a < visits.size();) {
    size_t b = a;
    while (b < visits.size() && b - a < kPass && visits[b].slot == visits[a].slot) ++b;
    // The next partition's codes start loading while this one is scanned (the hardware
    // prefetcher only catches on within a partition).
    if (b < visits.size()) {
      const Partition& next = partitions_[visits[b].slot];
      prefetch_bytes(next.codes(), std::min(layout_.bytes_for(next.size()), kCodePrefetchBytes));
    }
    scan(&visits[a], b - a);
    a = b;
  }

  auto scan_visit = [&scan](const Visit& v) { scan(&v, 1); };
  for (size_t i = 0; i < nq; ++i) {
    if (passes && heaps[i].size() < needed) {
      // The filter starves the candidates: visit further partitions, best first, until enough.
      const auto all = rank_partitions(q.row(i), params_.nlist);
      for (size_t r = sp.nprobe; r < all.size() && heaps[i].size() < needed; ++r)
        probe(static_cast<uint32_t>(r), all[r].second, static_cast<uint32_t>(i), all[r].first, scan_visit);
    }
    finish_query(q.row(i), heaps[i], sp.k, first_copies, out_ids + i * sp.k, out_dist + i * sp.k);
  }
}

// Re-ranks a query's candidates with their re-rank copies (when kept) and writes its k results.
void IvfIndex::finish_query(const float* q, ReservoirTopK<uint64_t>& heap, size_t k, const IdMap* first_copies,
                            int64_t* out_ids, float* out_dist) const {
  const size_t rb = raw_row_bytes();
  const auto candidates = heap.take();
  // The candidates' rows and ids lie scattered in memory: request them all before the first
  // is needed, so that the misses overlap instead of queueing one after another.
  for (const auto& c : candidates) {
    const size_t slot = c.label >> 32, off = c.label & 0xFFFFFFFFu;
    __builtin_prefetch(partitions_[slot].ids() + off);
    if (row_bytes_of(slot)) prefetch_bytes(partitions_[slot].raw_row(off, rb), std::min(rb, kRowPrefetchBytes));
  }
  // Kept across queries: no allocation per query.
  thread_local RefineCodec::Query rq;
  thread_local std::vector<Hit> hits;
  thread_local std::vector<const uint8_t*> rows;
  hits.clear();
  for (const auto& c : candidates) {
    const size_t slot = c.label >> 32, off = c.label & 0xFFFFFFFFu;
    hits.push_back({c.distance, partitions_[slot].ids()[off], c.label});
  }
  if (spilling()) keep_closest_copy(hits);  // each vector re-ranked once
  if (rb) {
    refine_.prepare(q, params_.metric, rq);
    // A spilled copy's row is its first copy's, found through the id map: all the lookups
    // are requested, then made, then their rows requested, before the first distance.
    auto spilled = [this](const Hit& hit) { return holds_spilled_copies(hit.label >> 32); };
    if (first_copies)
      for (const Hit& hit : hits)
        if (spilled(hit)) first_copies->prefetch(hit.id);
    rows.clear();
    for (const Hit& hit : hits) {
      rows.push_back(raw_row_at(hit.label >> 32, hit.label & 0xFFFFFFFFu, first_copies));
      if (spilled(hit)) prefetch_bytes(rows.back(), std::min(rb, kRowPrefetchBytes));
    }
  }
  TopK<int64_t> best(k);
  for (size_t i = 0; i < hits.size(); ++i)
    best.push(rb ? refine_.distance(rq, params_.metric, rows[i]) : hits[i].distance, hits[i].id);
  auto result = best.take_sorted();
  for (size_t j = 0; j < k; ++j) {
    out_ids[j] = j < result.size() ? result[j].label : -1;
    out_dist[j] = j < result.size() ? to_milvus_distance(params_.metric, result[j].distance) : missing_distance(params_.metric);
  }
}

}  // namespace anisoscan
