// _core.testing: hooks for exactness tests and benchmarks (FastScan kernels per SIMD level, a
// standalone quantizer, partition ranking). The API lives in core_module.cc.
#include <pybind11/stl.h>

#include <chrono>
#include <vector>

#include "anisotropic_pq.h"
#include "anisotropic_threshold.h"
#include "bindings.h"
#include "distances.h"
#include "fastscan.h"
#include "fastscan_lut.h"
#include "int8_centers.h"
#include "kmeans.h"
#include "multiversion.h"
#include "soar.h"
#include "topk.h"

namespace py = pybind11;

namespace anisoscan::bindings {

namespace {

// Quantized tables [queries, padded sub-spaces, 16] (or one [padded sub-spaces, 16]) checked
// against packed codes and prepared for a kernel.
class QueryTables {
 public:
  QueryTables(const FastScanKernel& kernel, const ByteArray& packed, const ByteArray& tables, size_t n,
              size_t msub) {
    FastScanLayout layout{msub};
    const size_t table_bytes = layout.padded_subspaces() * 16;
    if (static_cast<size_t>(packed.size()) < layout.bytes_for(n) || tables.ndim() < 2 || tables.ndim() > 3 ||
        tables.shape(tables.ndim() - 1) != 16 || static_cast<size_t>(tables.size()) % table_bytes != 0 ||
        tables.size() == 0)
      throw std::invalid_argument("packed codes or table have the wrong size");
    for (size_t j = 0; j < static_cast<size_t>(tables.size()) / table_bytes; ++j) {
      prepared_.emplace_back(kernel.prepared_lut_bytes(msub));
      kernel.prepare_lut(tables.data() + j * table_bytes, msub, prepared_.back().data());
    }
    for (const auto& p : prepared_) pointers_.push_back(p.data());
  }
  size_t count() const { return prepared_.size(); }
  const uint8_t* const* pointers() const { return pointers_.data(); }

 private:
  std::vector<AlignedVector<uint8_t>> prepared_;
  std::vector<const uint8_t*> pointers_;
};

SimdLevel supported_level(const std::string& name) {
  SimdLevel level = parse_simd_level(name);
  if (static_cast<int>(level) > static_cast<int>(detect_simd_level()))
    throw std::invalid_argument("level '" + name + "' is not supported by this CPU");
  return level;
}

// Records every pushed score, never tightening: the full score list of a scan.
class AllScores final : public ScanSink {
 public:
  explicit AllScores(uint16_t* out) : out_(out) {}
  uint32_t push(size_t index, uint16_t score) override {
    out_[index] = score;
    return 65536;
  }

 private:
  uint16_t* out_;
};

// Keeps the k smallest scores, tightening the limit as the scan goes.
class TopScores final : public ScanSink {
 public:
  explicit TopScores(size_t k) : heap_(k) {}
  uint32_t push(size_t index, uint16_t score) override {
    heap_.push(static_cast<float>(score), static_cast<int64_t>(index));
    return heap_.full() ? static_cast<uint32_t>(heap_.worst()) + 1 : 65536;
  }
  TopK<int64_t> heap_;
};

// Top-k scans of every query in one kernel call, as batched search runs them.
std::vector<TopScores> top_k_scan(const FastScanKernel& kernel, const QueryTables& luts, size_t msub,
                                  const uint8_t* codes, size_t n, size_t k) {
  std::vector<TopScores> heaps(luts.count(), TopScores(k));
  std::vector<ScanSink*> sinks;
  for (auto& h : heaps) sinks.push_back(&h);
  std::vector<uint32_t> limits(luts.count(), 65536);
  kernel.scan(luts.pointers(), luts.count(), msub, codes, n, limits.data(), sinks.data());
  return heaps;
}

}  // namespace

void add_testing_module(py::module_& core) {
  py::module_ m = core.def_submodule("testing", "Hooks for exactness tests and benchmarks; not part of the API.");
  m.def(
      "smallest_k",
      [](const FloatArray& values, size_t k) {
        if (values.ndim() != 1) throw std::invalid_argument("values: expected a 1-D float32 array");
        auto picked = smallest_k(values.data(), static_cast<size_t>(values.size()), k);
        FloatArray out_values(static_cast<py::ssize_t>(picked.size()));
        py::array_t<uint32_t> out_index(static_cast<py::ssize_t>(picked.size()));
        for (size_t i = 0; i < picked.size(); ++i) {
          out_values.mutable_data()[i] = picked[i].first;
          out_index.mutable_data()[i] = picked[i].second;
        }
        return py::make_tuple(out_values, out_index);
      },
      py::arg("values"), py::arg("k"),
      "The k smallest values and their indices, smallest first, ties to the smaller index (partition ranking).");

  m.def(
      "center_products",
      [](const FloatArray& x, const FloatArray& centers) {
        auto xv = matrix(x, "x");
        auto cv = matrix(centers, "centers");
        if (xv.cols != cv.cols) throw std::invalid_argument("x and centers differ in dimension");
        const size_t stride = panel_count(cv.rows) * kPanelRows;
        std::vector<float> products(xv.rows * stride);
        inner_products_panels(xv, to_panels(cv).data(), cv.rows, products.data());
        FloatArray out({static_cast<py::ssize_t>(xv.rows), static_cast<py::ssize_t>(cv.rows)});
        for (size_t i = 0; i < xv.rows; ++i)
          std::copy_n(products.data() + i * stride, cv.rows, out.mutable_data() + i * cv.rows);
        return out;
      },
      py::arg("x"), py::arg("centers"), "<x_i, c_j> [rows of x, centers] as partition ranking computes them.");
  m.def(
      "selected_center_products",
      [](const FloatArray& x, const FloatArray& centers, const py::array_t<uint32_t, py::array::c_style | py::array::forcecast>& which) {
        auto cv = matrix(centers, "centers");
        if (x.ndim() != 1 || static_cast<size_t>(x.size()) != cv.cols)
          throw std::invalid_argument("x: expected one row as long as the centers'");
        for (py::ssize_t i = 0; i < which.size(); ++i)
          if (which.data()[i] >= cv.rows) throw std::invalid_argument("which: a center index out of range");
        FloatArray out(which.size());
        inner_products_rows(x.data(), cv.data, cv.cols, which.data(), static_cast<size_t>(which.size()),
                            out.mutable_data());
        return out;
      },
      py::arg("x"), py::arg("centers"), py::arg("which"),
      "<x, c_j> for the centers j in `which`, as one query's exact ranking of its candidates computes them.");
  m.def(
      "int8_center_products",
      [](const std::string& level, const FloatArray& x, const FloatArray& centers) {
        auto xv = matrix(x, "x");
        auto cv = matrix(centers, "centers");
        if (xv.cols != cv.cols) throw std::invalid_argument("x and centers differ in dimension");
        Int8PanelProducts kernel = int8_panel_products_scalar;
        if (level == "avx2") {
          kernel = int8_panel_products();  // the AVX2 kernel, where the CPU can run it
          if (kernel == nullptr)
            throw std::invalid_argument("level avx2: this CPU or build lacks AVX2 (or ANISOSCAN_SIMD=scalar)");
        } else if (level != "scalar") {
          throw std::invalid_argument("level: scalar or avx2");
        }
        const Int8Centers int8(cv);
        const size_t dims = int8.dims(), stride = panel_count(cv.rows) * kPanelRows;
        std::vector<uint8_t> codes(xv.rows * dims);
        std::vector<Int8Query> queries(xv.rows);
        std::vector<int32_t> all(xv.rows * stride);
        for (size_t i = 0; i < xv.rows; ++i) queries[i] = quantize_query(xv.row(i), xv.cols, codes.data() + i * dims);
        kernel(codes.data(), xv.rows, dims, int8.panels(), cv.rows, all.data());  // all rows at once, as batches
        const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(xv.rows), static_cast<py::ssize_t>(cv.rows)};
        py::array_t<int32_t> sums(shape);
        FloatArray products(shape), bounds(shape);
        for (size_t i = 0; i < xv.rows; ++i)
          for (size_t j = 0; j < cv.rows; ++j) {
            const size_t at = i * cv.rows + j;
            sums.mutable_data()[at] = all[i * stride + j];
            products.mutable_data()[at] = int8.product(j, all[i * stride + j], queries[i]);
            bounds.mutable_data()[at] = int8.error_bound(j, queries[i]);
          }
        return py::make_tuple(sums, products, bounds, int8.usable());
      },
      py::arg("level"), py::arg("x"), py::arg("centers"),
      "(integer sums, <x_i, c_j> from them, each product's error bound, whether usable) [rows of x, centers] "
      "from the centers in integers; the AVX2 kernel only where the CPU has AVX2.");
  m.def("float_loops_fuse", &float_loops_fuse,
        "Whether the multi-versioned float loops run a clone with fused multiply-add on this CPU.");

  m.def(
      "kmeans",
      [](const FloatArray& x, size_t k, int iterations, bool spherical, uint64_t seed) {
        auto xv = matrix(x, "x");
        KMeansParams p;
        p.k = k;
        p.iterations = iterations;
        p.spherical = spherical;
        p.seed = seed;
        std::vector<float> centers;
        {
          py::gil_scoped_release release;
          centers = kmeans(xv, p);
        }
        return FloatArray({k, xv.cols}, centers.data());
      },
      py::arg("x"), py::arg("k"), py::arg("iterations"), py::arg("spherical") = false, py::arg("seed") = 1234,
      "The k centers of Lloyd's k-means (spherical: rows go to the center nearest in direction; each center is its rows' mean).");
  m.def("anisotropic_eta", &anisotropic_eta, py::arg("norm"), py::arg("threshold"), py::arg("dim"),
        py::arg("exact") = false);
  m.def("threshold_for_eta", &threshold_for_eta, py::arg("eta"), py::arg("norm"), py::arg("dim"),
        py::arg("exact") = true);
  m.def(
      "measure_eta",
      [](const FloatArray& sample, const FloatArray& centers, const py::array_t<int32_t, py::array::c_style>& assign,
         size_t data_rows, int threads) {
        auto sv = matrix(sample, "sample");
        auto cv = matrix(centers, "centers");
        if (cv.cols != sv.cols) throw std::invalid_argument("centers: dimension differs from the sample's");
        if (assign.ndim() != 1 || static_cast<size_t>(assign.shape(0)) != sv.rows)
          throw std::invalid_argument("assign: expected one partition per sample row");
        for (py::ssize_t i = 0; i < assign.shape(0); ++i)
          if (assign.data()[i] < 0 || static_cast<size_t>(assign.data()[i]) >= cv.rows)
            throw std::invalid_argument("assign: partition out of range");
        MeasuredEta m;
        {
          py::gil_scoped_release release;
          m = measure_eta(sv, cv.data, assign.data(), data_rows, threads);
        }
        py::dict out;
        out["eta"] = m.eta;
        out["pair_score"] = m.pair_score;
        out["pairs"] = m.pairs;
        return out;
      },
      py::arg("sample"), py::arg("centers"), py::arg("assign"), py::arg("data_rows"), py::arg("threads") = 0,
      "eta measured on a sample (anisotropic_threshold.h): {eta, pair_score, pairs}.");

  m.def(
      "train_pq",
      [](const FloatArray& y, const FloatArray& x, size_t sub_dim, double threshold, int iterations,
         bool anisotropic_codebooks, bool exact_eta, int threads, int max_assign_rounds) {
        auto yv = matrix(y, "residuals");
        auto xv = matrix(x, "vectors");
        if (yv.rows != xv.rows || yv.cols != xv.cols) throw std::invalid_argument("residuals and vectors differ in shape");
        PQTrainParams p;
        p.sub_dim = sub_dim;
        p.anisotropic_threshold = threshold;
        p.iterations = iterations;
        p.anisotropic_codebooks = anisotropic_codebooks;
        p.exact_eta = exact_eta;
        p.threads = threads;
        p.max_assign_rounds = max_assign_rounds;
        ProductQuantizer pq(yv.cols, sub_dim);
        std::vector<double> history;
        ByteArray codes({yv.rows, pq.num_subspaces()});
        ByteArray nearest({yv.rows, pq.num_subspaces()});
        double loss_codes, loss_nearest;
        {
          py::gil_scoped_release release;
          pq.train(yv, xv, p, &history);
          pq.encode(yv, xv, p, codes.mutable_data());
          PQTrainParams plain = p;
          plain.anisotropic_threshold = 0.0;
          pq.encode(yv, xv, plain, nearest.mutable_data());
          loss_codes = pq.mean_loss(yv, xv, codes.data(), p);
          loss_nearest = pq.mean_loss(yv, xv, nearest.data(), p);
        }
        py::dict out;
        out["loss_history"] = history;
        out["codes"] = codes;
        out["nearest_codes"] = nearest;
        out["loss_codes"] = loss_codes;
        out["loss_nearest_codes"] = loss_nearest;
        out["codebooks"] = FloatArray({pq.num_subspaces(), kCodewords, sub_dim}, pq.codebooks().data());
        return out;
      },
      py::arg("residuals"), py::arg("vectors"), py::arg("sub_dim"), py::arg("threshold"), py::arg("iterations"),
      py::arg("anisotropic_codebooks") = true, py::arg("exact_eta") = false, py::arg("threads") = 0,
      py::arg("max_assign_rounds") = PQTrainParams{}.max_assign_rounds,
      "Trains a standalone quantizer; returns losses, codes and codebooks (for tests and studies).");

  m.def(
      "soar_assign",
      [](const FloatArray& x, const py::array_t<int32_t, py::array::c_style>& primary, const FloatArray& centers,
         double lambda, int threads) {
        auto xv = matrix(x, "vectors");
        auto cv = matrix(centers, "centers");
        if (cv.cols != xv.cols || static_cast<size_t>(primary.size()) != xv.rows)
          throw std::invalid_argument("expected primary [n] and centers [nlist, dim] for vectors [n, dim]");
        for (size_t i = 0; i < xv.rows; ++i)
          if (primary.data()[i] < 0 || static_cast<size_t>(primary.data()[i]) >= cv.rows)
            throw std::invalid_argument("primary: partition out of range");
        py::array_t<int32_t> spill(static_cast<py::ssize_t>(xv.rows));
        {
          py::gil_scoped_release release;
          const std::vector<float> panels = to_panels(cv), norms = row_norms_sq(cv);
          soar_assign(xv, primary.data(), cv.data, panels.data(), norms.data(), cv.rows, lambda, threads,
                      spill.mutable_data());
        }
        return spill;
      },
      py::arg("vectors"), py::arg("primary"), py::arg("centers"), py::arg("soar_lambda"), py::arg("threads") = 0,
      "Each vector's spilled partition as the index chooses it (kernels/soar.h).");

  // FastScan kernels, exposed for exactness tests and the kernel benchmark.
  m.def(
      "resolve_simd_level",
      [](const std::string& forced, const std::string& supported) {
        return std::string(simd_level_name(resolve_simd_level(forced.c_str(), parse_simd_level(supported))));
      },
      "The level ANISOSCAN_SIMD=forced selects on a CPU that supports `supported`.");
  m.def("fastscan_pack", [](const ByteArray& codes) {
    if (codes.ndim() != 2) throw std::invalid_argument("codes: expected [n, num_subspaces]");
    size_t n = codes.shape(0), msub = codes.shape(1);
    FastScanLayout layout{msub};
    ByteArray packed(static_cast<py::ssize_t>(layout.bytes_for(n)));
    std::fill(packed.mutable_data(), packed.mutable_data() + packed.size(), 0);
    layout.pack(codes.data(), n, 0, packed.mutable_data());
    return packed;
  });
  m.def(
      "fastscan_quantize_lut",
      [](const FloatArray& lut, const std::string& level) {
        if (lut.ndim() != 2 || lut.shape(1) != 16 || lut.shape(0) == 0)
          throw std::invalid_argument("lut: expected [num_subspaces, 16] with num_subspaces >= 1");
        QuantizedLut q;
        fastscan_kernel(supported_level(level)).quantize_lut(lut.data(), lut.shape(0), q);
        size_t rows = q.table.size() / 16;
        return py::make_tuple(ByteArray({rows, size_t{16}}, q.table.data()), q.scale, q.offset);
      },
      py::arg("lut"), py::arg("level") = "scalar",
      "(table [padded sub-spaces, 16] uint8, scale, offset) as the given SIMD level quantizes it.");
  m.def(
      "fastscan_scores",
      [](const std::string& level, const ByteArray& packed, const ByteArray& table, size_t n, size_t msub) {
        const FastScanKernel& kernel = fastscan_kernel(supported_level(level));
        QueryTables lut(kernel, packed, table, n, msub);
        if (table.ndim() != 2 || lut.count() != 1)
          throw std::invalid_argument("packed codes or table have the wrong size");
        py::array_t<uint16_t> scores(static_cast<py::ssize_t>(n));
        AllScores sink(scores.mutable_data());
        kernel.scan_one(lut.pointers()[0], msub, packed.data(), n, 65536, sink);
        return scores;
      },
      py::arg("level"), py::arg("packed"), py::arg("table"), py::arg("n"), py::arg("num_subspaces"));
  m.def(
      "fastscan_topk",
      [](const std::string& level, const ByteArray& packed, const ByteArray& tables, size_t n, size_t msub,
         size_t k) {
        const FastScanKernel& kernel = fastscan_kernel(supported_level(level));
        QueryTables luts(kernel, packed, tables, n, msub);
        std::vector<TopScores> heaps = top_k_scan(kernel, luts, msub, packed.data(), n, k);
        const size_t kk = std::min(k, n);
        IdArray idx({luts.count(), kk});
        py::array_t<uint16_t> sc({luts.count(), kk});
        for (size_t j = 0; j < luts.count(); ++j) {
          auto best = heaps[j].heap_.take_sorted();
          for (size_t i = 0; i < kk; ++i) {
            idx.mutable_data()[j * kk + i] = best[i].label;
            sc.mutable_data()[j * kk + i] = static_cast<uint16_t>(best[i].distance);
          }
        }
        if (tables.ndim() == 2) return py::make_tuple(idx.attr("reshape")(-1), sc.attr("reshape")(-1));
        return py::make_tuple(py::object(idx), py::object(sc));
      },
      py::arg("level"), py::arg("packed"), py::arg("tables"), py::arg("n"), py::arg("num_subspaces"), py::arg("k"),
      "Top-k (indices, scores) [queries, k] for tables [queries, padded sub-spaces, 16], all queries scanned "
      "in one kernel call; a 2-D table is one query and gives 1-D results.");
  m.def(
      "fastscan_benchmark",
      [](const std::string& level, const ByteArray& packed, const ByteArray& tables, size_t n, size_t msub,
         size_t k, double min_seconds) {
        const FastScanKernel& kernel = fastscan_kernel(supported_level(level));
        QueryTables luts(kernel, packed, tables, n, msub);
        AlignedVector<uint8_t> codes(packed.data(), packed.data() + FastScanLayout{msub}.bytes_for(n));
        py::gil_scoped_release release;
        size_t scanned = 0;
        auto start = std::chrono::steady_clock::now();
        double elapsed = 0.0;
        do {  // top-k scans as search runs them: thresholds in registers, heaps behind them
          top_k_scan(kernel, luts, msub, codes.data(), n, k);
          scanned += n * luts.count();
          elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        } while (elapsed < min_seconds);
        return scanned / elapsed;
      },
      py::arg("level"), py::arg("packed"), py::arg("tables"), py::arg("n"), py::arg("num_subspaces"), py::arg("k"),
      py::arg("min_seconds"),
      "Vectors x queries scanned per second on one thread (top-k scans of the given codes; tables as in "
      "fastscan_topk, all queries in one pass).");}

}  // namespace anisoscan::bindings
