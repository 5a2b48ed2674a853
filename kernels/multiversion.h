// Function multi-versioning for plain C++ loops: on x86-64 with GCC the function is compiled
// once per ISA and the loader picks the best one at run time (no -march=native needed).
#pragma once

// Whole x86-64 levels, not ISA names: in target_clones a comma separates clones, so
// "avx2,fma" made two (AVX2 without FMA won). v3 is AVX2 + FMA, v4 adds AVX-512 F/BW/DQ/VL;
// the resolver checks each level's features. Older GCC cannot clone by level: the loops
// are built for the baseline there.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define ANISOSCAN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define ANISOSCAN_LEVEL_CLONES 1
#else
#define ANISOSCAN_MULTIVERSION
#endif

// Whether the clone the loader picks fuses multiply-add (what float results round like).
inline bool float_loops_fuse() {
#if defined(ANISOSCAN_LEVEL_CLONES)
  static const bool fused = __builtin_cpu_supports("x86-64-v3");
  return fused;
#else
  return false;
#endif
}

// Whether the CPU has 32 vector registers (AVX-512), for code that sizes register tiles: a
// function's clones cannot tell which ISA they were compiled for.
inline bool has_32_vector_registers() {
#if defined(ANISOSCAN_LEVEL_CLONES)
  static const bool wide = __builtin_cpu_supports("x86-64-v4");  // the clone that has them
  return wide;
#else
  return false;
#endif
}
