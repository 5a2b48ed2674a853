#include "pq_lookup.h"

#include <algorithm>

#include "multiversion.h"

namespace anisoscan {

ANISOSCAN_MULTIVERSION
void build_float_lut(const ProductQuantizer& pq, const float* query, bool l2, float* lut) {
  const size_t ds = pq.sub_dim();
  for (size_t s = 0; s < pq.num_subspaces(); ++s) {
    float row[kCodewords] = {};  // 16 codewords at a time, local so that nothing aliases it
    for (size_t t = 0; t < ds; ++t) {
      const float qt = query[s * ds + t];
      const float* c = pq.coordinate_of_codewords(s, t);
      if (l2) {
        for (size_t k = 0; k < kCodewords; ++k) row[k] += (qt - c[k]) * (qt - c[k]);
      } else {
        for (size_t k = 0; k < kCodewords; ++k) row[k] -= qt * c[k];
      }
    }
    std::copy(row, row + kCodewords, lut + s * kCodewords);
  }
}

}  // namespace anisoscan
