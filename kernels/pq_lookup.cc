#include "pq_lookup.h"

#include "multiversion.h"
#include "vector_types.h"

namespace anisoscan {

// A row's 16 entries stay in two registers' worth of floats until stored: a local array
// went through the stack and was copied out piecewise.
ANISOSCAN_MULTIVERSION
void build_float_lut(const ProductQuantizer& pq, const float* query, bool l2, float* lut) {
  static_assert(kCodewords == 16, "a row is two Float8");
  const size_t ds = pq.sub_dim();
  for (size_t s = 0; s < pq.num_subspaces(); ++s) {
    Float8 low{}, high{};  // codewords 0-7 and 8-15
    for (size_t t = 0; t < ds; ++t) {
      const float qt = query[s * ds + t];
      const float* c = pq.coordinate_of_codewords(s, t);
      const Float8 c_low = *reinterpret_cast<const Float8*>(c), c_high = *reinterpret_cast<const Float8*>(c + 8);
      if (l2) {
        const Float8 e_low = qt - c_low, e_high = qt - c_high;
        low += e_low * e_low;
        high += e_high * e_high;
      } else {
        low -= qt * c_low;
        high -= qt * c_high;
      }
    }
    *reinterpret_cast<Float8*>(lut + s * kCodewords) = low;
    *reinterpret_cast<Float8*>(lut + s * kCodewords + 8) = high;
  }
}

}  // namespace anisoscan
