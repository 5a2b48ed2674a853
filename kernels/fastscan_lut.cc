#include "fastscan_lut.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "fastscan_layout.h"
#include "multiversion.h"

namespace anisoscan {

void QuantizedLut::reset(size_t m) {
  table.resize(FastScanLayout{m}.padded_subspaces() * kCodewords);
  std::fill(table.begin() + m * kCodewords, table.end(), 0);  // the quantizer writes the rest
  row_min.resize(m);
  row_max.resize(m);
}

uint32_t LutScale::limit_for(float worst) const {
  if (!(worst < std::numeric_limits<float>::infinity())) return 65536;
  double x = (static_cast<double>(worst) - offset) * scale;
  if (x < 0.0) return 0;
  if (x >= 65535.0) return 65536;
  return static_cast<uint32_t>(std::ceil(x)) + 1;
}

namespace {

struct ScalarRow : RowByRowMinmax<ScalarRow> {
  static void minmax(const float* row, float& lo, float& hi) {
    lo = hi = row[0];
    for (size_t k = 1; k < kCodewords; ++k) {
      lo = std::min(lo, row[k]);
      hi = std::max(hi, row[k]);
    }
  }
  static void quantize(const float* row, float lo, float scale, float top, uint8_t* out) {
    for (size_t k = 0; k < kCodewords; ++k)  // values are >= 0: +0.5 and truncation round
      out[k] = static_cast<uint8_t>(std::min((row[k] - lo) * scale + 0.5f, top));
  }
};

}  // namespace

void quantize_lut(const float* lut, size_t m, QuantizedLut& out) { quantize_lut_rows<ScalarRow>(lut, m, out); }

}  // namespace anisoscan
