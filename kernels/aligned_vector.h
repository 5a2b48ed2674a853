// std::vector with 64-byte aligned storage, so that 64-byte SIMD loads never split cache lines.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace anisoscan {

template <typename T, size_t Alignment = 64>
struct AlignedAllocator {
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, Alignment>;
  };
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Alignment>&) {}

  T* allocate(size_t n) {
    size_t bytes = (n * sizeof(T) + Alignment - 1) / Alignment * Alignment;
    void* p = std::aligned_alloc(Alignment, bytes == 0 ? Alignment : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <typename U>
  bool operator==(const AlignedAllocator<U, Alignment>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U, Alignment>&) const { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace anisoscan
