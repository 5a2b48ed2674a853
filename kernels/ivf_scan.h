// What search and range search share: the filter of one call resolved to a bit per stored
// copy of each vector, the merging of a spilled vector's two copies, and one query's
// prepared lookup table.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "anisotropic_pq.h"
#include "fastscan.h"
#include "fastscan_lut.h"
#include "pq_lookup.h"
#include "ivf_index.h"

namespace anisoscan {

// The filter of one search call, resolved to a bit per stored copy of each vector.
class IvfIndex::Passes {
 public:
  // O(filter size) for id lists (through the id maps of the first and, when spilling, the
  // second copies), plus O(N) only for a mask (it is indexed by id, so every stored id is
  // looked up once).
  Passes(const std::vector<Partition>& partitions, const IdMap& first, const IdMap* second, const IdFilter& f)
      : first_(partitions.size() + 1, 0) {
    auto set_copies = [&](int64_t id, bool pass) {
      set(first.find(id, partitions), pass);
      if (second) set(second->find(id, partitions), pass);
    };
    for (size_t p = 0; p < partitions.size(); ++p) first_[p + 1] = first_[p] + partitions[p].size();
    const size_t total = first_.back();
    bits_.assign((total + 63) / 64, f.has_allowed ? 0 : ~uint64_t{0});
    if (!f.has_allowed && total % 64) bits_.back() = (uint64_t{1} << (total % 64)) - 1;
    allowed_in_.assign(partitions.size(), 0);
    if (f.has_allowed)
      for (int64_t id : f.allowed) set_copies(id, true);
    else
      for (size_t p = 0; p < partitions.size(); ++p) allowed_in_[p] = partitions[p].size();
    for (int64_t id : f.excluded) set_copies(id, false);
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

// One hit of a query: its distance, id and (search) where it is stored (slot << 32 | offset).
struct Hit {
  float distance;
  int64_t id;
  uint64_t label = 0;
};

// Hits in which a spilled vector may appear twice: keeps each id once, at its smaller
// distance (copies re-ranked from the same row tie). Order is lost.
inline void keep_closest_copy(std::vector<Hit>& hits) {
  std::sort(hits.begin(), hits.end(),
            [](const Hit& a, const Hit& b) { return a.id != b.id ? a.id < b.id : a.distance < b.distance; });
  hits.erase(std::unique(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.id == b.id; }),
             hits.end());
}

// One query's lookup table, quantized and in the kernel's register order. One table serves
// every partition, except for L2 with residual codes: there each partition needs a table
// for the query's offset from its center. A table keeps only its scale and its prepared
// bytes (kept between builds); the float and quantized tables it starts from are scratch
// shared by the thread. Once a thread's tables have grown, nothing is allocated per query
// or partition.
class PreparedTable {
 public:
  // The table of `query`, or of its offset from `center` when that is not null.
  void build(const ProductQuantizer& pq, const FastScanKernel& kernel, const float* query, bool l2,
             const float* center) {
    thread_local std::vector<float> target, lut;
    thread_local QuantizedLut quantized;
    const size_t m = pq.num_subspaces(), d = pq.dim();
    target.resize(m * pq.sub_dim());  // query or residual, zero-padded to whole sub-spaces
    for (size_t t = 0; t < d; ++t) target[t] = center ? query[t] - center[t] : query[t];
    std::fill(target.begin() + d, target.end(), 0.f);
    lut.resize(m * kCodewords);
    build_float_lut(pq, target.data(), l2, lut.data());
    kernel.quantize_lut(lut.data(), m, quantized);
    scale_ = quantized;
    prepared_.resize(kernel.prepared_lut_bytes(m));
    kernel.prepare_lut(quantized.table.data(), m, prepared_.data());
  }
  const LutScale& scale() const { return scale_; }
  const uint8_t* prepared() const { return prepared_.data(); }

 private:
  LutScale scale_;
  AlignedVector<uint8_t> prepared_;
};

}  // namespace anisoscan
