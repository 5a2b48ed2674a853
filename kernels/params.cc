#include "params.h"

#include <algorithm>

namespace anisoscan {

namespace {

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
}

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
