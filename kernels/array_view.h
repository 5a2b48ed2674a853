// Non-owning views into caller memory (a C++17 stand-in for std::span / mdspan).
#pragma once

#include <cstddef>

namespace anisoscan {

template <typename T>
struct Span {
  T* data = nullptr;
  size_t size = 0;

  T& operator[](size_t i) const { return data[i]; }
  T* begin() const { return data; }
  T* end() const { return data + size; }
  bool empty() const { return size == 0; }
};

// Row-major [rows, cols] matrix view.
template <typename T>
struct MatrixView {
  T* data = nullptr;
  size_t rows = 0;
  size_t cols = 0;

  T* row(size_t i) const { return data + i * cols; }
};

}  // namespace anisoscan
