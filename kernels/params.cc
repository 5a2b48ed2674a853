#include "params.h"

#include <algorithm>

namespace anisoscan {

namespace {

// The anisotropic loss is derived for inner products, where 0.2 suits unit-scale data. Its
// threshold is an absolute score, so for L2 (any scale) the default follows the data.
// Measured on bigann-10k (SIFT, norms ~509), codes-only recall@10 at nprobe 74 of 230:
// 0.778 plain PQ, 0.790 at 0.1 x the mean norm, 0.789 at 0.2 x, 0.781 at 0.5 x.
constexpr double kInnerProductThreshold = 0.2;
constexpr double kL2RelativeThreshold = 0.1;
constexpr size_t kDefaultNprobe = 8;  // Knowhere's

}  // namespace

ScannConfig::ScannConfig() { apply_defaults(*this); }

SearchConfig::SearchConfig() { apply_defaults(*this); }

void resolve(IndexParams& p) {
  if (p.dim == 0 || p.dim > kMaxDim)
    throw std::invalid_argument("dim: " + std::to_string(p.dim) + " is out of range; must be [1, " +
                                std::to_string(kMaxDim) + "]");
  check_ranges<ScannConfig>(p);
  if (p.sub_dim > p.dim)
    throw std::invalid_argument("sub_dim: " + std::to_string(p.sub_dim) + " exceeds dim=" + std::to_string(p.dim) +
                                "; use 1.." + std::to_string(std::min<size_t>(16, p.dim)));
  if (!p.anisotropic_threshold && p.metric != Metric::kL2) p.anisotropic_threshold = kInnerProductThreshold;
}

double l2_default_threshold(double mean_norm) { return kL2RelativeThreshold * mean_norm; }

void resolve(SearchConfig& c, size_t nlist) {
  check_ranges(c);
  if (!c.nprobe) c.nprobe = std::min(kDefaultNprobe, nlist);
  if (*c.nprobe > nlist)
    throw std::invalid_argument("nprobe: " + std::to_string(*c.nprobe) + " exceeds nlist=" + std::to_string(nlist) +
                                "; use 1.." + std::to_string(nlist));
  if (!c.reorder_k) c.reorder_k = c.k;
  if (*c.reorder_k < c.k)
    throw std::invalid_argument("reorder_k: " + std::to_string(*c.reorder_k) + " is smaller than k=" +
                                std::to_string(c.k) + "; use reorder_k >= k");
}

}  // namespace anisoscan
