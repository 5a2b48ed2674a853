// What the binding's two files share: numpy array types, views into them, the testing submodule.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "array_view.h"

namespace anisoscan::bindings {

using FloatArray = pybind11::array_t<float, pybind11::array::c_style>;
using IdArray = pybind11::array_t<int64_t, pybind11::array::c_style>;
using ByteArray = pybind11::array_t<uint8_t, pybind11::array::c_style>;

inline MatrixView<const float> matrix(const FloatArray& a, const char* name) {
  if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + ": expected a 2-D array");
  return {a.data(), static_cast<size_t>(a.shape(0)), static_cast<size_t>(a.shape(1))};
}

// _core.testing: the kernels, the quantizer and the selection exposed for exactness tests and
// the kernel benchmark; not part of the API.
void add_testing_module(pybind11::module_& core);

}  // namespace anisoscan::bindings
