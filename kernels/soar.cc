#include "soar.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "distances.h"
#include "parallel.h"

namespace anisoscan {

void soar_assign(MatrixView<const float> x, const int32_t* primary, const float* center_rows,
                 const float* center_panels, const float* center_norms, size_t ncenters, double lambda, int threads, int32_t* spill) {
  const size_t d = x.cols, stride = panel_count(ncenters) * kPanelRows;
  if (ncenters < 2) throw std::invalid_argument("soar_assign: a second partition needs at least two centers");
  const size_t blocks = (x.rows + kProductRows - 1) / kProductRows;
  parallel_for(blocks, threads, 1, [&](size_t b, size_t e, int) {
    std::vector<float> residuals(kProductRows * d);
    std::unique_ptr<float[]> xc(new float[kProductRows * stride]), rc(new float[kProductRows * stride]);
    for (size_t block = b; block < e; ++block) {
      const size_t first = block * kProductRows, rows = std::min(kProductRows, x.rows - first);
      const MatrixView<const float> xb{x.row(first), rows, d};
      for (size_t i = 0; i < rows; ++i) {
        const float* center = center_rows + static_cast<size_t>(primary[first + i]) * d;
        for (size_t t = 0; t < d; ++t) residuals[i * d + t] = xb.row(i)[t] - center[t];
      }
      inner_products_panels(xb, center_panels, ncenters, xc.get());  // <x, c'>
      inner_products_panels({residuals.data(), rows, d}, center_panels, ncenters, rc.get());  // <r, c'>
      for (size_t i = 0; i < rows; ++i) {
        const float* xi = xb.row(i);
        const float* ri = residuals.data() + i * d;
        double rx = 0, rr = 0;
        for (size_t t = 0; t < d; ++t) {
          rx += static_cast<double>(ri[t]) * xi[t];
          rr += static_cast<double>(ri[t]) * ri[t];
        }
        const double weight = rr > 0 ? lambda / rr : 0.0;
        const size_t own = static_cast<size_t>(primary[first + i]);
        double best = std::numeric_limits<double>::infinity();
        int32_t pick = own == 0 ? 1 : 0;  // a valid partition even if every loss is NaN
        for (size_t c = 0; c < ncenters; ++c) {
          if (c == own) continue;
          const double parallel = rx - rc[i * stride + c];  // <r, x - c'>
          // The loss less ||x||^2, the same for every c'.
          const double loss = center_norms[c] - 2.0 * xc[i * stride + c] + weight * parallel * parallel;
          if (loss < best) {
            best = loss;
            pick = static_cast<int32_t>(c);
          }
        }
        spill[first + i] = pick;
      }
    }
  });
}

}  // namespace anisoscan
