// GCC vector-extension types for the multi-versioned loops: each clone compiles them to its
// own vector width (helpers using them are always inlined into each clone for that).
#pragma once

#include <cstdint>

namespace anisoscan {

// Four doubles or eight floats, read from any address aligned to one element and allowed to
// alias it.
using Double4 = double __attribute__((vector_size(32), aligned(8), may_alias));
using Float8 = float __attribute__((vector_size(32), aligned(4), may_alias));
using Index4 = int64_t __attribute__((vector_size(32)));

}  // namespace anisoscan
