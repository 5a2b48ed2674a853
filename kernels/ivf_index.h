// The IVF + anisotropic 4-bit PQ index: partitions from k-means, residuals encoded with a
// ProductQuantizer, codes stored in the FastScan layout, optional raw vectors for re-ranking.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aligned_vector.h"
#include "anisotropic_pq.h"
#include "array_view.h"
#include "fastscan_layout.h"
#include "metric.h"

namespace anisoscan {

struct IndexParams {
  size_t dim = 0;
  Metric metric = Metric::kIP;
  size_t nlist = 128;
  bool with_raw_data = true;
  size_t training_sample_size = 100000;
  int kmeans_iters = 10;
  PQTrainParams pq;  // sub_dim, anisotropic_threshold, ... (pq.threads mirrors threads)
  uint64_t seed = 42;
  int threads = 0;  // 0: all cores
};

struct SearchParams {
  size_t k = 10;
  size_t nprobe = 8;
  size_t reorder_k = 0;  // 0: k. Ignored without raw data.
  int threads = 0;
};

class IvfIndex {
 public:
  explicit IvfIndex(const IndexParams& params);

  const IndexParams& params() const { return params_; }
  size_t dim() const { return params_.dim; }
  bool is_trained() const { return trained_; }
  size_t size() const { return count_; }
  size_t memory_bytes() const;
  const ProductQuantizer& quantizer() const { return pq_; }

  // Learns partitions and codebooks from (a sample of) x; adds nothing.
  void train(MatrixView<const float> x);
  // Encodes with the trained codebooks and appends; ids are taken as given.
  void add(MatrixView<const float> x, const int64_t* ids);

  // Results in Milvus semantics, [q.rows, k] each; missing results have id -1.
  void search(MatrixView<const float> queries, const SearchParams& params, int64_t* ids,
              float* distances) const;

  void save(const std::string& path) const;
  static IvfIndex load(const std::string& path);

 private:
  struct Partition {
    std::vector<int64_t> ids;
    AlignedVector<uint8_t> codes;  // FastScanLayout blocks
    std::vector<float> raw;      // [size, dim] when with_raw_data
    size_t size() const { return ids.size(); }
  };

  // Cosine inputs are normalized copies; other metrics pass through.
  std::vector<float> prepare(MatrixView<const float> x) const;
  void search_one(const float* query, const SearchParams& params, int64_t* ids,
                  float* distances) const;

  IndexParams params_;
  ProductQuantizer pq_;
  FastScanLayout layout_;
  // Derived from centers_ (not stored in files): a transposed copy and squared norms for
  // scoring all partitions of a query without horizontal sums.
  void derive_center_tables();

  std::vector<float> centers_;  // [nlist, dim]
  std::vector<float> centers_t_;  // [dim, nlist]
  std::vector<float> center_norms_;  // [nlist]
  std::vector<Partition> partitions_;
  bool trained_ = false;
  size_t count_ = 0;

  friend class IndexFile;
};

}  // namespace anisoscan
