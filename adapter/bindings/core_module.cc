// pybind11 bindings for the C++ core: numpy in, numpy out, the GIL released for heavy work.
// Validation with friendly messages happens in the Python layer; the checks here guard the
// C++ side against anything that slips through.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include <chrono>
#include <limits>
#include <stdexcept>

#include "anisotropic_pq.h"
#include "exact_search.h"
#include "fastscan.h"
#include "fastscan_lut.h"
#include "index_file.h"
#include "ivf_index.h"
#include "topk.h"

namespace py = pybind11;
using namespace anisoscan;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using IdArray = py::array_t<int64_t, py::array::c_style>;
using ByteArray = py::array_t<uint8_t, py::array::c_style>;

MatrixView<const float> matrix(const FloatArray& a, const char* name) {
  if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + ": expected a 2-D array");
  return {a.data(), static_cast<size_t>(a.shape(0)), static_cast<size_t>(a.shape(1))};
}

Span<const int64_t> id_span(const IdArray& ids, const char* name) {
  if (ids.ndim() != 1) throw std::invalid_argument(std::string(name) + ": expected a 1-D array of ids");
  return {ids.data(), static_cast<size_t>(ids.shape(0))};
}

// allowed: None or a sorted unique array; excluded: a sorted unique array (maybe empty);
// mask: None or a 1-D array of 0/1 bytes indexed by id.
IdFilter make_filter(const std::optional<IdArray>& allowed, const IdArray& excluded,
                     const std::optional<ByteArray>& mask) {
  IdFilter f;
  if (allowed) {
    f.allowed = id_span(*allowed, "allowed_ids");
    f.has_allowed = true;
  }
  f.excluded = id_span(excluded, "excluded_ids");
  if (mask) {
    if (mask->ndim() != 1) throw std::invalid_argument("allowed_mask: expected a 1-D array indexed by id");
    f.mask = {mask->data(), static_cast<size_t>(mask->shape(0))};
    f.has_mask = true;
  }
  return f;
}

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
      prepared_.emplace_back(layout.prepared_lut_bytes());
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

std::pair<IdArray, FloatArray> result_arrays(size_t nq, size_t k) {
  return {IdArray({nq, k}), FloatArray({nq, k})};
}

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

PYBIND11_MODULE(_core, m) {
  m.doc() = "anisoscan C++ core";
  py::register_exception<IndexFileError>(m, "IndexFileError", PyExc_ValueError);
  // A failed write is an OSError with its errno (ENOSPC: the disk is full).
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const IndexFileWriteError& e) {
      py::object error = py::module_::import("builtins").attr("OSError")(e.error_number(), e.what());
      PyErr_SetObject(PyExc_OSError, error.ptr());
    }
  });

  py::class_<IvfIndex>(m, "IvfIndex")
      .def(py::init([](size_t dim, const std::string& metric, size_t nlist, size_t sub_dim, bool with_raw_data,
                       bool by_residual, double anisotropic_threshold, bool exact_eta, bool anisotropic_codebooks,
                       int pq_iterations, size_t training_sample_size, int kmeans_iters, uint64_t seed,
                       int threads) {
             IndexParams p;
             p.dim = dim;
             p.metric = parse_metric(metric);
             p.nlist = nlist;
             p.with_raw_data = with_raw_data;
             p.by_residual = by_residual;
             p.training_sample_size = training_sample_size;
             p.kmeans_iters = kmeans_iters;
             p.seed = seed;
             p.threads = threads;
             p.pq.sub_dim = sub_dim;
             p.pq.anisotropic_threshold = anisotropic_threshold;
             p.pq.exact_eta = exact_eta;
             p.pq.anisotropic_codebooks = anisotropic_codebooks;
             p.pq.iterations = pq_iterations;
             return IvfIndex(p);
           }),
           py::arg("dim"), py::arg("metric"), py::arg("nlist"), py::arg("sub_dim"), py::arg("with_raw_data"),
           py::arg("by_residual"), py::arg("anisotropic_threshold"), py::arg("exact_eta"),
           py::arg("anisotropic_codebooks"), py::arg("pq_iterations"), py::arg("training_sample_size"),
           py::arg("kmeans_iters"), py::arg("seed"), py::arg("threads"))
      .def("train",
           [](IvfIndex& self, const FloatArray& x) {
             auto v = matrix(x, "vectors");
             py::gil_scoped_release release;
             self.train(v);
           })
      .def(
          "add",
          [](IvfIndex& self, const FloatArray& x, const IdArray& ids, bool replace) {
            auto v = matrix(x, "vectors");
            if (ids.ndim() != 1 || static_cast<size_t>(ids.shape(0)) != v.rows)
              throw std::invalid_argument("ids: expected one id per vector");
            py::gil_scoped_release release;
            self.add(v, ids.data(), replace);
          },
          py::arg("vectors"), py::arg("ids"), py::arg("replace") = false)
      .def("remove",
           [](IvfIndex& self, const IdArray& ids) {
             auto s = id_span(ids, "ids");
             py::gil_scoped_release release;
             self.remove(s);
           })
      .def("compact",
           [](IvfIndex& self) {
             py::gil_scoped_release release;
             self.compact();
           })
      .def("contains",
           [](const IvfIndex& self, const IdArray& ids) {
             auto s = id_span(ids, "ids");
             py::array_t<bool> out(s.size);
             {
               py::gil_scoped_release release;
               self.contains(s, reinterpret_cast<uint8_t*>(out.mutable_data()));
             }
             return out;
           })
      .def("get_vectors",
           [](const IvfIndex& self, const IdArray& ids) {
             auto s = id_span(ids, "ids");
             FloatArray out({s.size, self.dim()});
             float* o = out.mutable_data();
             {
               py::gil_scoped_release release;
               self.get_vectors(s, o);
             }
             return out;
           })
      .def(
          "search",
          [](const IvfIndex& self, const FloatArray& q, size_t k, size_t nprobe, size_t reorder_k, int threads,
             const std::optional<IdArray>& allowed, const IdArray& excluded, const std::optional<ByteArray>& mask) {
            auto v = matrix(q, "queries");
            auto [ids, dist] = result_arrays(v.rows, k);
            SearchParams sp{k, nprobe, reorder_k, threads};
            IdFilter filter = make_filter(allowed, excluded, mask);
            int64_t* ip = ids.mutable_data();
            float* dp = dist.mutable_data();
            {
              py::gil_scoped_release release;
              self.search(v, sp, filter, ip, dp);
            }
            return py::make_tuple(ids, dist);
          },
          py::arg("queries"), py::arg("k"), py::arg("nprobe"), py::arg("reorder_k"), py::arg("threads"),
          py::arg("allowed_ids"), py::arg("excluded_ids"), py::arg("allowed_mask"))
      .def(
          "range_search",
          [](const IvfIndex& self, const FloatArray& q, float radius, float range_filter, size_t nprobe, int threads,
             const std::optional<IdArray>& allowed, const IdArray& excluded, const std::optional<ByteArray>& mask) {
            auto v = matrix(q, "queries");
            SearchParams sp{1, nprobe, 0, threads};
            IdFilter filter = make_filter(allowed, excluded, mask);
            RangeResult r;
            {
              py::gil_scoped_release release;
              r = self.range_search(v, radius, range_filter, sp, filter);
            }
            py::array_t<int64_t> lims(static_cast<py::ssize_t>(r.lims.size()));
            std::copy(r.lims.begin(), r.lims.end(), lims.mutable_data());
            return py::make_tuple(lims, IdArray(static_cast<py::ssize_t>(r.ids.size()), r.ids.data()),
                                  FloatArray(static_cast<py::ssize_t>(r.distances.size()), r.distances.data()));
          },
          py::arg("queries"), py::arg("radius"), py::arg("range_filter"), py::arg("nprobe"), py::arg("threads"),
          py::arg("allowed_ids"), py::arg("excluded_ids"), py::arg("allowed_mask"))
      .def("save",
           [](const IvfIndex& self, const std::string& path) {
             py::gil_scoped_release release;
             self.save(path);
           })
      .def_static(
          "load",
          [](const std::string& path, bool mmap, bool verify_checksum) {
            py::gil_scoped_release release;
            return IvfIndex::load(path, mmap, verify_checksum);
          },
          py::arg("path"), py::arg("mmap") = false, py::arg("verify_checksum") = true)
      .def_property_readonly("dim", &IvfIndex::dim)
      .def_property_readonly("size", &IvfIndex::size)
      .def_property_readonly("is_trained", &IvfIndex::is_trained)
      .def_property_readonly("memory_bytes", &IvfIndex::memory_bytes)
      .def_property_readonly("metric", [](const IvfIndex& s) { return std::string(metric_name(s.params().metric)); })
      .def_property_readonly("params", [](const IvfIndex& s) {
        const IndexParams& p = s.params();
        py::dict d;
        d["dim"] = p.dim;
        d["metric"] = metric_name(p.metric);
        d["nlist"] = p.nlist;
        d["sub_dim"] = p.pq.sub_dim;
        d["with_raw_data"] = p.with_raw_data;
        d["by_residual"] = p.by_residual;
        d["anisotropic_threshold"] = p.pq.anisotropic_threshold;
        d["exact_eta"] = p.pq.exact_eta;
        d["anisotropic_codebooks"] = p.pq.anisotropic_codebooks;
        d["pq_iterations"] = p.pq.iterations;
        d["training_sample_size"] = p.training_sample_size;
        d["kmeans_iters"] = p.kmeans_iters;
        d["seed"] = p.seed;
        d["threads"] = p.threads;
        return d;
      });

  m.def(
      "exact_search",
      [](const FloatArray& base, const FloatArray& queries, size_t k, const std::string& metric, int threads) {
        auto b = matrix(base, "base");
        auto q = matrix(queries, "queries");
        if (b.cols != q.cols) throw std::invalid_argument("queries: dimension differs from base");
        Metric mt = parse_metric(metric);
        auto [ids, dist] = result_arrays(q.rows, k);
        int64_t* ip = ids.mutable_data();
        float* dp = dist.mutable_data();
        {
          py::gil_scoped_release release;
          exact_search(b, q, mt, k, threads, ip, dp);
        }
        return py::make_tuple(ids, dist);
      },
      py::arg("base"), py::arg("queries"), py::arg("k"), py::arg("metric"), py::arg("threads") = 0);

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

  m.def("anisotropic_eta", &anisotropic_eta, py::arg("norm"), py::arg("threshold"), py::arg("dim"),
        py::arg("exact") = false);

  m.def(
      "train_pq",
      [](const FloatArray& y, const FloatArray& x, size_t sub_dim, double threshold, int iterations,
         bool anisotropic_codebooks, bool exact_eta) {
        auto yv = matrix(y, "residuals");
        auto xv = matrix(x, "vectors");
        if (yv.rows != xv.rows || yv.cols != xv.cols) throw std::invalid_argument("residuals and vectors differ in shape");
        PQTrainParams p;
        p.sub_dim = sub_dim;
        p.anisotropic_threshold = threshold;
        p.iterations = iterations;
        p.anisotropic_codebooks = anisotropic_codebooks;
        p.exact_eta = exact_eta;
        ProductQuantizer pq(yv.cols, sub_dim);
        std::vector<double> history;
        ByteArray codes({yv.rows, pq.num_subspaces()});
        ByteArray nearest({yv.rows, pq.num_subspaces()});
        double loss_codes, loss_nearest;
        {
          py::gil_scoped_release release;
          history = pq.train(yv, xv, p);
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
      py::arg("anisotropic_codebooks") = true, py::arg("exact_eta") = false,
      "Trains a standalone quantizer; returns losses, codes and codebooks (for tests and studies).");

  // FastScan kernels, exposed for exactness tests and the kernel benchmark.
  m.def("simd_level", [] { return std::string(simd_level_name(active_simd_level())); },
        "The level searches use now (honours ANISOSCAN_SIMD).");
  m.def(
      "resolve_simd_level",
      [](const std::string& forced, const std::string& supported) {
        return std::string(simd_level_name(resolve_simd_level(forced.c_str(), parse_simd_level(supported))));
      },
      "The level ANISOSCAN_SIMD=forced selects on a CPU that supports `supported`.");
  m.def("detected_simd_level", [] { return std::string(simd_level_name(detect_simd_level())); });
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
      "fastscan_topk, all queries in one pass).");
}
