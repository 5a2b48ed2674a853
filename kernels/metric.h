// Similarity metrics and the internal "distance" convention shared by every kernel.
#pragma once

#include <stdexcept>
#include <string>

namespace anisoscan {

enum class Metric { kIP, kL2, kCosine };

// Internally every search minimizes a distance: -<q,x> for IP/COSINE, ||q-x||^2 for L2.
// Milvus reports IP/COSINE as larger-is-better, so the sign flips at the API boundary.
inline float to_milvus_distance(Metric metric, float internal) {
  return metric == Metric::kL2 ? internal : -internal;
}

inline Metric parse_metric(const std::string& name) {
  if (name == "IP") return Metric::kIP;
  if (name == "L2") return Metric::kL2;
  if (name == "COSINE") return Metric::kCosine;
  throw std::invalid_argument("metric_type: unknown metric '" + name +
                              "'; use one of \"IP\", \"L2\", \"COSINE\"");
}

inline const char* metric_name(Metric metric) {
  switch (metric) {
    case Metric::kIP: return "IP";
    case Metric::kL2: return "L2";
    case Metric::kCosine: return "COSINE";
  }
  return "?";
}

}  // namespace anisoscan
