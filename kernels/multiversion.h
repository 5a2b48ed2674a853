// Function multi-versioning for plain C++ loops: on x86-64 with GCC the function is compiled
// once per ISA and the loader picks the best one at run time (no -march=native needed).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ANISOSCAN_MULTIVERSION __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define ANISOSCAN_MULTIVERSION
#endif

// Whether the CPU has 32 vector registers (AVX-512), for code that sizes register tiles: a
// function's clones cannot tell which ISA they were compiled for.
inline bool has_32_vector_registers() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const bool wide = __builtin_cpu_supports("avx512f");
  return wide;
#else
  return false;
#endif
}
