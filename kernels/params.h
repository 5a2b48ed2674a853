// Every parameter of the index, declared once: name, default, range, phase and a one-line
// description, in Knowhere's declarative style. IvfConfig holds what any IVF index is built
// with, ScannConfig adds the quantizer's, SearchConfig what each search takes. Validation,
// the bindings, the file format and Python's IndexParams/SearchParams all read these
// declarations; the rules that span fields live in resolve() below.
//
// Adding a parameter: a member, one line in declare(), and its use in the algorithm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "metric.h"

namespace anisoscan {

constexpr size_t kMaxDim = 32768;
constexpr size_t kMaxNlist = 65536;
constexpr size_t kMaxK = size_t{1} << 20;
constexpr double kUnbounded = std::numeric_limits<double>::infinity();

enum class Phase { kBuild, kSearch };

// How the re-rank copy of each vector is kept (with_raw_data): float32 as given, or int8 with
// a per-dimension offset and scale (ScaNN's int8 reorder; Milvus's refine_type SQ8).
enum class RefineType { kFP32, kSQ8 };

// The names of an enum parameter's values, indexed by value: what users write.
template <class E>
struct EnumNames;
template <>
struct EnumNames<RefineType> {
  static constexpr const char* names[] = {"FP32", "SQ8"};
};

// One declaration. T is the member's type: an arithmetic type, bool, an enum with
// EnumNames, or std::optional of one when the default is derived from other fields or the
// data (`derived` says how).
template <class Config, class T>
struct Param {
  T Config::*member;
  const char* name;
  Phase phase;
  T default_value;
  double min, max;  // inclusive; bools and enums have none
  const char* description;
  const char* derived = nullptr;  // set for std::optional members
};

template <class T>
struct ValueOf {
  using type = T;
};
template <class T>
struct ValueOf<std::optional<T>> {
  using type = T;
};
template <class T>
using value_of_t = typename ValueOf<T>::type;

// What any IVF index is built with (Knowhere's IvfConfig).
struct IvfConfig {
  size_t nlist;
  size_t training_sample_size;
  int kmeans_iters;
  uint64_t seed;
  int threads;

  template <class Self, class Visit>
  static void declare(Visit&& v) {
    constexpr Phase b = Phase::kBuild;
    v(Param<Self, size_t>{&Self::nlist, "nlist", b, 128, 1, kMaxNlist,
                          "IVF partitions (k-means centers; for IP and COSINE rows assigned by direction)"});
    v(Param<Self, size_t>{&Self::training_sample_size, "training_sample_size", b, 100000, 1, 1u << 31,
                          "vectors sampled to train the partitions and the codebooks"});
    v(Param<Self, int>{&Self::kmeans_iters, "kmeans_iters", b, 10, 1, 1000, "k-means iterations for the partitions"});
    v(Param<Self, uint64_t>{&Self::seed, "seed", b, 42, 0, 9007199254740992.0,  // 2^53: exact as a double
                            "random seed of sampling and k-means"});
    v(Param<Self, int>{&Self::threads, "threads", b, 0, 0, 4096, "threads for building (0: all cores)"});
  }
};

// SCANN: IVF plus anisotropic 4-bit product quantization (Knowhere's ScannConfig).
struct ScannConfig : IvfConfig {
  size_t sub_dim;
  bool with_raw_data;
  RefineType refine_type;
  bool by_residual;
  std::optional<double> anisotropic_threshold;
  bool anisotropic_codebooks;
  bool exact_eta;
  int pq_iterations;
  int pq_init_iters;
  size_t pq_training_sample_size;
  double soar_lambda;

  template <class Visit>
  static void declare(Visit&& v) {
    using S = ScannConfig;
    constexpr Phase b = Phase::kBuild;
    IvfConfig::declare<S>(v);
    v(Param<S, size_t>{&S::sub_dim, "sub_dim", b, 2, 1, 16,
                       "dimensions per PQ sub-space, one 4-bit code each (need not divide dim)"});
    v(Param<S, bool>{&S::with_raw_data, "with_raw_data", b, true, 0, 1,
                     "keep a copy of the vectors to re-rank the best reorder_k candidates"});
    v(Param<S, RefineType>{&S::refine_type, "refine_type", b, RefineType::kFP32, 0, 0,
                           "the re-rank copy: FP32 exact, or SQ8 (int8 per dimension, about a quarter the memory)"});
    v(Param<S, bool>{&S::by_residual, "by_residual", b, true, 0, 1,
                     "codes approximate each vector's offset from its partition center; false: the vector"});
    v(Param<S, std::optional<double>>{&S::anisotropic_threshold, "anisotropic_threshold", b, std::nullopt, 0,
                                      kUnbounded, "score threshold T of the anisotropic loss; 0: plain PQ",
                                      "IP and COSINE: the T whose eta matches the training sample's neighbour scores along and "
                                      "across its residuals, at most 0.2; L2: 0.1 x the sample's mean norm"});
    v(Param<S, bool>{&S::anisotropic_codebooks, "anisotropic_codebooks", b, true, 0, 1,
                     "also solve the codebook update under the anisotropic loss"});
    v(Param<S, bool>{&S::exact_eta, "exact_eta", b, true, 0, 1,
                     "finite-d eta from the integrals rather than its large-d limit"});
    v(Param<S, int>{&S::pq_iterations, "pq_iterations", b, 8, 0, 100,
                    "assignment and codebook-update rounds of the quantizer"});
    v(Param<S, int>{&S::pq_init_iters, "pq_init_iters", b, 16, 1, 1000,
                    "plain k-means iterations that start each sub-space's codebook"});
    v(Param<S, size_t>{&S::pq_training_sample_size, "pq_training_sample_size", b, 100000, 1, 1u << 31,
                       "of the training sample, vectors the codebooks are trained on (all are encoded)"});
    v(Param<S, double>{&S::soar_lambda, "soar_lambda", b, 0.0, 0, 1000,
                       "SOAR spilling: > 0 also keeps each vector's codes (not its re-rank copy) in a second "
                       "partition, chosen with this weight against residuals parallel to the first (paper: 1); "
                       "0: off"});
  }

  ScannConfig();
};

// What a search takes; Milvus's `limit` is k.
struct SearchConfig {
  size_t k;
  std::optional<size_t> nprobe;
  std::optional<size_t> reorder_k;
  int threads;

  template <class Visit>
  static void declare(Visit&& v) {
    using S = SearchConfig;
    constexpr Phase s = Phase::kSearch;
    v(Param<S, size_t>{&S::k, "k", s, 10, 1, kMaxK, "results per query (Milvus: limit)"});
    v(Param<S, std::optional<size_t>>{&S::nprobe, "nprobe", s, std::nullopt, 1, kMaxNlist,
                                      "partitions visited, at most nlist", "min(8, nlist)"});
    v(Param<S, std::optional<size_t>>{&S::reorder_k, "reorder_k", s, std::nullopt, 1, kMaxK,
                                      "candidates re-scored exactly (with raw data); at least k", "k"});
    v(Param<S, int>{&S::threads, "threads", s, 0, 0, 4096, "threads for a batch of queries (0: all cores)"});
  }

  SearchConfig();
};

// The index's identity (from the collection: the field's dim and the metric) and its config.
struct IndexParams : ScannConfig {
  size_t dim = 0;
  Metric metric = Metric::kIP;
};

// What the search kernels run with: a resolved SearchConfig.
struct SearchParams {
  size_t k = 10;
  size_t nprobe = 8;
  size_t reorder_k = 10;
  int threads = 0;
};

// Each declared value within its range, or std::invalid_argument naming the field and range.
template <class Config>
void check_ranges(const Config& c);

// The rules that span fields. Index: dim and sub_dim (the threshold's default needs the
// data: set at training). Search: nprobe <= nlist, reorder_k >= k.
void resolve(IndexParams& p);
void resolve(SearchConfig& c, size_t nlist);

// Applies visit(param) to every declaration of Config, in declaration order.
template <class Config, class Visit>
void for_each_param(Visit&& visit) {
  Config::declare(visit);
}

template <class Config>
void apply_defaults(Config& c) {
  for_each_param<Config>([&c](const auto& p) { c.*(p.member) = p.default_value; });
}

template <class Config>
void check_ranges(const Config& c) {
  for_each_param<Config>([&c](const auto& p) {
    using T = std::decay_t<decltype(c.*(p.member))>;
    using V = value_of_t<T>;
    if constexpr (!std::is_same_v<V, bool> && !std::is_enum_v<V>) {
      const auto& held = c.*(p.member);
      V value;
      if constexpr (std::is_same_v<T, V>) {
        value = held;
      } else {
        if (!held) return;
        value = *held;
      }
      const double x = static_cast<double>(value);
      if (!(x >= p.min && x <= p.max)) {  // NaN fails too
        auto show = [](double b) {
          char text[32];
          std::snprintf(text, sizeof text, "%.10g", b);
          return std::string(b == kUnbounded ? "inf" : text);
        };
        throw std::invalid_argument(std::string(p.name) + ": " + show(x) + " is out of range; must be [" +
                                    show(p.min) + ", " + show(p.max) + "]");
      }
    }
  });
}

}  // namespace anisoscan
