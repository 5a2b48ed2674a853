// Milvus range search: every vector of the probed partitions within [radius, range_filter).
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "distances.h"
#include "ivf_scan.h"
#include "parallel.h"

namespace anisoscan {

namespace {

// Collects every vector whose approximate distance lies in [low, high).
template <typename Passes>
class RangeSink final : public ScanSink {
 public:
  RangeSink(std::vector<Hit>& out, const LutScale& lut, float bias, float low, float high,
            const Partition& part, size_t p, const Passes* passes)
      : out_(out), lut_(lut), bias_(bias), low_(low), high_(high), part_(part), p_(p), passes_(passes) {
    limit_ = lut_.limit_for(high - bias);
  }
  uint32_t limit() const { return limit_; }

  uint32_t push(size_t index, uint16_t score) override {
    float dist = bias_ + lut_.distance(score);
    if (dist >= low_ && dist < high_ && (!passes_ || passes_->test(p_, index)))
      out_.push_back({dist, part_.ids()[index]});
    return limit_;
  }

 private:
  std::vector<Hit>& out_;
  const LutScale& lut_;
  float bias_, low_, high_;
  const Partition& part_;
  size_t p_;
  const Passes* passes_;
  uint32_t limit_;
};

}  // namespace

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
  const PreparedRows qp = prepare(queries);
  std::shared_lock lock(*mutex_);
  const std::unique_ptr<Passes> passes = passes_for(filter);
  const IdMap* first_copies = first_copies_for_rerank();
  const size_t m = pq_.num_subspaces(), rb = raw_row_bytes();
  std::vector<std::vector<Hit>> hits(queries.rows);
  parallel_for(queries.rows, sp.threads, 1, [&](size_t b, size_t e, int) {
    PreparedTable table;  // buffers shared by this thread's queries
    RefineCodec::Query rq;
    for (size_t qi = b; qi < e; ++qi) {
      const float* q = qp.rows().row(qi);
      auto& out = hits[qi];
      if (!tables_per_partition() && !rb) table.build(pq_, kernel, q, l2, nullptr);
      if (rb) refine_.prepare(q, params_.metric, rq);
      for (const auto& [center_distance, p] : rank_partitions(q, sp.nprobe)) {
        if (!rb && tables_per_partition()) table.build(pq_, kernel, q, true, center(p));
        for_each_slot(p, [&](size_t slot) {
          const Partition& part = partitions_[slot];
          if (rb) {  // distances from the re-rank copies: exact with FP32
            for (size_t i = 0; i < part.size(); ++i) {
              if (passes && !passes->test(slot, i)) continue;
              const float dist = refine_.distance(rq, params_.metric, raw_row_at(slot, i, first_copies));
              if (dist >= low && dist < high) out.push_back({dist, part.ids()[i]});
            }
          } else if (part.size() > 0) {
            const float bias = score_bias(center_distance);
            RangeSink<Passes> sink(out, table.scale(), bias, low, high, part, slot, passes.get());
            kernel.scan_one(table.prepared(), m, part.codes(), part.size(), sink.limit(), sink);
          }
        });
      }
      if (spilling()) keep_closest_copy(out);
      std::sort(out.begin(), out.end(), [](const Hit& a, const Hit& b) {
        return a.distance != b.distance ? a.distance < b.distance : a.id < b.id;
      });
    }
  });
  RangeResult r;
  r.lims.push_back(0);
  for (const auto& h : hits) {
    for (const Hit& hit : h) {
      r.ids.push_back(hit.id);
      r.distances.push_back(to_milvus_distance(params_.metric, hit.distance));
    }
    r.lims.push_back(r.ids.size());
  }
  return r;
}

}  // namespace anisoscan
