// The IVF + anisotropic 4-bit PQ index: partitions from k-means, residuals encoded with a
// ProductQuantizer, codes stored in the FastScan layout, optional raw vectors for re-ranking.
// Thread-safe: searches share a lock, changes (add, remove, compact) take it alone.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "anisotropic_pq.h"
#include "array_view.h"
#include "distances.h"
#include "fastscan_layout.h"
#include "int8_centers.h"
#include "id_map.h"
#include "metric.h"
#include "params.h"
#include "partition.h"
#include "refine.h"
#include "topk.h"

namespace anisoscan {

// Which ids a search may return: an allow-list, a deny-list (both sorted, unique) and a mask
// indexed by id (id i passes when i < mask.size and mask[i] != 0), in any combination.
struct IdFilter {
  Span<const int64_t> allowed;  // empty with has_allowed == false: everything allowed
  bool has_allowed = false;
  Span<const int64_t> excluded;
  Span<const uint8_t> mask;  // empty with has_mask == false: no mask
  bool has_mask = false;
  bool active() const { return has_allowed || has_mask || !excluded.empty(); }
};

struct RangeResult {
  std::vector<size_t> lims;  // query i's results are [lims[i], lims[i+1])
  std::vector<int64_t> ids;
  std::vector<float> distances;
};

class MappedFile;

class IvfIndex {
 public:
  explicit IvfIndex(const IndexParams& params);
  IvfIndex(IvfIndex&&) noexcept;
  IvfIndex& operator=(IvfIndex&&) noexcept;
  ~IvfIndex();

  const IndexParams& params() const { return params_; }
  size_t dim() const { return params_.dim; }
  bool is_trained() const { return trained_; }
  size_t size() const;
  size_t memory_bytes() const;
  const ProductQuantizer& quantizer() const { return pq_; }

  // Learns partitions and codebooks from (a sample of) x; adds nothing.
  void train(MatrixView<const float> x);
  // Encodes with the trained codebooks and appends. An id already present is an error,
  // unless `replace` (upsert): then its old vector goes first. Ids within x are distinct.
  void add(MatrixView<const float> x, const int64_t* ids, bool replace = false);
  // Removes the ids; if any is unknown nothing changes and the error lists them.
  void remove(Span<const int64_t> ids);
  // Returns spare capacity left by removals.
  void compact();
  // out[i] = 1 when ids[i] is stored, else 0: lets a caller check a change before making it.
  void contains(Span<const int64_t> ids, uint8_t* out) const;
  // Copies the raw vectors of the ids (normalized for COSINE) into out [ids.size, dim].
  void get_vectors(Span<const int64_t> ids, float* out) const;

  // Results in Milvus semantics, [q.rows, k] each; missing results have id -1.
  void search(MatrixView<const float> queries, const SearchParams& params, const IdFilter& filter,
              int64_t* ids, float* distances) const;
  // Milvus range search: IP/COSINE keep radius < score <= range_filter, L2 keeps
  // range_filter <= distance < radius. Exact with raw data, approximate without.
  RangeResult range_search(MatrixView<const float> queries, float radius, float range_filter,
                           const SearchParams& params, const IdFilter& filter) const;

  void save(const std::string& path) const;
  static IvfIndex load(const std::string& path, bool mmap, bool verify_checksum);

 private:
  class Passes;

  static IndexParams resolved(IndexParams p);
  // Bytes of each vector's re-rank copy in a partition (0 without raw data).
  size_t raw_row_bytes() const { return params_.with_raw_data ? refine_.row_bytes() : 0; }
  // partitions_ holds the nlist partitions, then with SOAR spilling nlist more: slot nlist + p
  // holds the second copies (id and codes, no re-rank row) of the vectors spilled to partition p.
  bool spilling() const { return params_.soar_lambda > 0 && params_.nlist > 1; }
  size_t slot_count() const { return params_.nlist * (spilling() ? 2 : 1); }
  // fn(slot) for the slots a probe of partition p scans: p, then (spilling) nlist + p.
  template <class Fn>
  void for_each_slot(size_t p, Fn&& fn) const {
    for (size_t slot = p; slot < partitions_.size(); slot += params_.nlist) fn(slot);
  }
  // Whether a slot holds second copies: those keep no re-rank row of their own.
  bool holds_spilled_copies(size_t slot) const { return slot >= params_.nlist; }
  size_t row_bytes_of(size_t slot) const { return holds_spilled_copies(slot) ? 0 : raw_row_bytes(); }
  // The re-rank row of the vector at (slot, offset): a spilled copy's is its first copy's,
  // found through `first_copies` (the id map; only needed with spilled slots).
  const uint8_t* raw_row_at(size_t slot, size_t offset, const IdMap* first_copies) const;
  // The id map when re-ranking needs it to find spilled copies' rows, else null.
  const IdMap* first_copies_for_rerank() const { return spilling() && raw_row_bytes() ? &id_map() : nullptr; }
  size_t size_locked() const;
  // Rows as the index compares them: the caller's own, viewed in place (a batch search copies
  // nothing), or for COSINE normalized copies held here. Not copyable: the view may point into
  // the copy (a function returns one by guaranteed elision).
  class PreparedRows {
   public:
    PreparedRows(MatrixView<const float> x, bool normalize);
    PreparedRows(const PreparedRows&) = delete;
    PreparedRows& operator=(const PreparedRows&) = delete;
    const MatrixView<const float>& rows() const { return rows_; }

   private:
    std::vector<float> copy_;
    MatrixView<const float> rows_;
  };
  PreparedRows prepare(MatrixView<const float> x) const;
  // What the codes approximate: each row minus its partition's center, or the row (by_residual).
  // centers: [partitions, dim] row by row.
  std::vector<float> code_targets(MatrixView<const float> x, const int32_t* assign, const float* centers) const;
  // Partition p's center [dim], in place.
  const float* center(size_t p) const { return center_rows_.data() + p * params_.dim; }
  // Ranking reads and multiplies every center: past this size of float panels (beyond a
  // core's L2 cache) a first pass over the centers in integers pays for itself.
  static constexpr size_t kInt8RankingMinBytes = size_t{1} << 20;
  // Whether each searched partition needs its own lookup table (L2 with residual codes).
  bool tables_per_partition() const { return params_.metric == Metric::kL2 && params_.by_residual; }
  // What a partition adds to its codes' scores, from -<q, c>: that for IP/COSINE residual
  // codes; L2 tables and direct codes score the whole distance.
  float score_bias(float center_distance) const;
  void check_searchable(MatrixView<const float> queries, const SearchParams& sp) const;
  // The `count` nearest partitions of each query, nearest first (ties to the lower index),
  // ranked exactly: in integers first where that can rule centers out, then in floats.
  // Each comes as (-<q, c>, partition).
  using Ranking = std::vector<std::pair<float, uint32_t>>;
  std::vector<Ranking> rank_partitions(MatrixView<const float> queries, size_t count) const;
  Ranking rank_partitions(const float* q, size_t count) const {
    return std::move(rank_partitions({q, 1, params_.dim}, count)[0]);
  }
  // The same from a query's inner products with the centers.
  Ranking rank_by_products(const float* products, size_t count) const;
  // out[i * stride + j] = <q_i, c_j> for every center (stride: whole panels), summed as the
  // panels sum: from the panels where kept, else from the rows in place, or from panels made
  // for the call for kRowsForCallPanels queries or more.
  void center_products(MatrixView<const float> q, float* out) const;
  static constexpr size_t kRowsForCallPanels = 16;
  // The centers as panels: the kept ones, else made into `made` for the caller's use.
  const float* panels_or_made(std::vector<float>& made) const;
  // Each row's partition, the nearest center by the assignment distance: from the panels where
  // kept, else the first of the row's ranking (the same center: rankings order centers by that
  // distance, ties to the lower index).
  std::vector<int32_t> assign_rows(MatrixView<const float> x) const;
  // The same from a query's integer sums with the centers (int8_centers.h; the query
  // bounded()): exact products for the centers whose bounds leave them a chance.
  Ranking rank_candidates(const float* q, const Int8Query& iq, const int32_t* sums, size_t count) const;
  // IP and COSINE put a row in the partition whose center points its way, and rank a query's
  // partitions the same way. Each center is the mean of its training rows, so residual codes
  // see residuals of mean zero: unit centers had left every partition its own offset (mpnet
  // codes-only recall at all nprobe 0.899 -> 0.912). Ranking by <q, c> instead of direction
  // lost up to 0.012 of the true neighbours' partitions at equal nprobe (mpnet, GloVe).
  bool by_direction() const { return params_.metric != Metric::kL2; }
  // A query's partitions are ranked by the distance rows are assigned by, from <q, c>.
  float ranking_distance(size_t c, float product) const {
    return assignment_distance(product, assignment_terms_[c], by_direction());
  }
  // How much ranking_distance moves per unit of the product (the first pass's error bounds).
  float ranking_slope(size_t c) const { return by_direction() ? assignment_terms_[c] : 2.f; }
  // Queries searched together share each pass over a partition's codes: the more the better
  // (mpnet, 2 threads: blocks of 500 queries +5% over 125), up to a block whose tables and
  // candidates take kBlockScratchBytes of the thread's memory. A block's partitions are
  // ranked kBlockProductFloats / centers queries at a time: their center products (a float
  // per query and center) then stay about L2's size.
  static constexpr size_t kBlockScratchBytes = size_t{8} << 20, kBlockProductFloats = size_t{1} << 17;
  // Candidates each query needs (k distinct vectors among them) and keeps for re-ranking,
  // and the most queries a block can hold then.
  size_t candidates_needed(const SearchParams& params) const;
  size_t candidates_kept(const SearchParams& params) const;
  size_t queries_per_block(const SearchParams& params, const struct FastScanKernel& kernel) const;
  void search_block(MatrixView<const float> queries, const SearchParams& params, const Passes* passes,
                    const IdMap* first_copies, const struct FastScanKernel& kernel, int64_t* ids,
                    float* distances) const;
  void finish_query(const float* query, ReservoirTopK<uint64_t>& candidates, size_t k, const IdMap* first_copies,
                    int64_t* ids, float* distances) const;
  // The filter of one call, resolved over every slot (both copies of a spilled vector).
  std::unique_ptr<Passes> passes_for(const IdFilter& filter) const;
  // Where each of `ids` is stored; throws listing the ids that are absent.
  std::vector<Location> locate(Span<const int64_t> ids, const char* what) const;
  // An id map over the slots [first, last), built on first use (searches need it only for id
  // filters, or to re-rank spilled copies; a mapped file never pays for it unless one of those
  // or a change asks).
  struct LazyIdMap {
    IdMap map;
    bool built = false;
  };
  // Where each id's first copy lies, and (spilling) its second. Callers hold mutex_, shared or unique.
  const IdMap& id_map() const { return built(first_copies_, 0, params_.nlist); }
  const IdMap& spill_map() const { return built(second_copies_, params_.nlist, slot_count()); }
  const IdMap& built(LazyIdMap& map, size_t first, size_t last) const;
  // Appends row i of codes [n, m] (and of raw [n, row bytes]) to slot slot_base + where[i].
  void append_rows(const int32_t* where, size_t slot_base, const int64_t* ids, size_t n, const uint8_t* codes,
                   const uint8_t* raw, LazyIdMap& map);
  void remove_locked(Span<const int64_t> ids);
  void remove_at(std::vector<Location> where, IdMap& map);
  // Keeps the centers [nlist, dim] row by row with their squared norms and either in integers
  // (past kInt8RankingMinBytes: a first pass of the ranking, after which the few exact
  // products read the rows) or as panels (for scoring all partitions of a query at once).
  void set_centers(const std::vector<float>& centers);

  IndexParams params_;
  ProductQuantizer pq_;
  FastScanLayout layout_;
  RefineCodec refine_;
  std::vector<float> center_rows_;  // [nlist, dim]: residuals, per-partition tables, files
  std::vector<float> center_panels_;  // the same as panels (distances.h) where int8_centers_ is not usable
  // In integers (int8_centers.h) when the panels would pass kInt8RankingMinBytes and the AVX2
  // pass may run (at train or load), else empty.
  Int8Centers int8_centers_;
  std::vector<float> center_norms_;  // [nlist] ||c||^2
  std::vector<float> assignment_terms_;  // [nlist] of assign_nearest_panels (distances.h)
  std::vector<Partition> partitions_;
  bool trained_ = false;
  std::shared_ptr<const MappedFile> mapping_;  // keeps views of a mapped file valid
  std::unique_ptr<std::shared_mutex> mutex_;
  mutable LazyIdMap first_copies_, second_copies_;
  std::unique_ptr<std::mutex> id_map_mutex_;  // builds a map once under a shared mutex_
};

}  // namespace anisoscan
