// pybind11 bindings for the C++ core: numpy in, numpy out, the GIL released for heavy work.
// Validation with friendly messages happens in the Python layer; the checks here guard the
// C++ side against anything that slips through.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>

#include "bindings.h"
#include "exact_search.h"
#include "fastscan.h"
#include "index_file.h"
#include "ivf_index.h"
#include "params_dict.h"

namespace py = pybind11;
using namespace anisoscan;
using namespace anisoscan::bindings;

namespace {

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

py::dict index_params_dict(const IndexParams& p) {
  py::dict d;
  d["dim"] = p.dim;
  d["metric"] = metric_name(p.metric);
  put_into_dict<ScannConfig>(p, d);
  return d;
}

std::pair<IdArray, FloatArray> result_arrays(size_t nq, size_t k) {
  return {IdArray({nq, k}), FloatArray({nq, k})};
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
      .def(py::init([](size_t dim, const std::string& metric, const py::dict& params) {
             IndexParams p;
             p.dim = dim;
             p.metric = parse_metric(metric);
             set_from_dict<ScannConfig>(p, params);
             return IvfIndex(p);
           }),
           py::arg("dim"), py::arg("metric"), py::arg("params"),
           "An empty index; params: build parameters by name (param_schema()), the rest default.")
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
      .def_property_readonly("params", [](const IvfIndex& s) { return index_params_dict(s.params()); });

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


  m.attr("MAX_DIM") = kMaxDim;
  m.def("param_schema", [] {
    py::list out;
    append_schema<ScannConfig>(out);
    append_schema<SearchConfig>(out);
    return out;
  }, "Every parameter's declaration: name, type, default, min, max, phase, description, derived.");
  m.def(
      "resolve_index_params",
      [](size_t dim, const std::string& metric, const py::dict& params) {
        IndexParams p;
        p.dim = dim;
        p.metric = parse_metric(metric);
        set_from_dict<ScannConfig>(p, params);
        resolve(p);
        return index_params_dict(p);
      },
      py::arg("dim"), py::arg("metric"), py::arg("params"),
      "The build parameters with defaults filled and every rule checked (ValueError names the field).");
  m.def(
      "resolve_search_params",
      [](const py::dict& params, size_t nlist) {
        SearchConfig c;
        set_from_dict(c, params);
        resolve(c, nlist);
        py::dict d;
        put_into_dict(c, d);
        return d;
      },
      py::arg("params"), py::arg("nlist"), "The search parameters for an index of nlist partitions, resolved.");

  m.def("simd_level", [] { return std::string(simd_level_name(active_simd_level())); },
        "The level searches use now (honours ANISOSCAN_SIMD).");
  m.def("detected_simd_level", [] { return std::string(simd_level_name(detect_simd_level())); });
  add_testing_module(m);
}
