// A config in an index file. Version 5 and later write it from the declarations in params.h,
// so a new parameter needs no change here:
//   u32   count
//   then per parameter: u8 name length, the name, u8 kind, 8 bytes
//   kind: 0 unset (a derived default not yet resolved), 1 integer or enum value (u64),
//         2 real (double), 3 bool (u64 0/1)
// A name this build does not declare is an error (the file is newer); a declared name the
// file lacks takes its default (the file is older than the parameter).
#pragma once

#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "index_file.h"
#include "params.h"

namespace anisoscan {

namespace params_file {

enum Kind : uint8_t { kUnset = 0, kInteger = 1, kReal = 2, kBool = 3 };

template <class V>
constexpr Kind kind_of() {
  if constexpr (std::is_same_v<V, bool>) return kBool;
  if constexpr (std::is_floating_point_v<V>) return kReal;
  return kInteger;
}

template <class V>
uint64_t encode(V value) {
  if constexpr (std::is_enum_v<V>) {
    return static_cast<uint64_t>(value);
  } else if constexpr (std::is_floating_point_v<V>) {
    const double d = value;
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    return bits;
  } else {
    return static_cast<uint64_t>(value);
  }
}

template <class V>
V decode(uint64_t bits) {
  if constexpr (std::is_floating_point_v<V>) {
    double d;
    std::memcpy(&d, &bits, 8);
    return static_cast<V>(d);
  } else if constexpr (std::is_same_v<V, bool>) {
    return bits != 0;
  } else if constexpr (std::is_enum_v<V>) {
    return static_cast<V>(bits);
  } else {
    return static_cast<V>(bits);
  }
}

}  // namespace params_file

template <class Config>
void write_params(IndexFileWriter& w, const Config& c) {
  uint32_t count = 0;
  for_each_param<Config>([&count](const auto&) { ++count; });
  w.put<uint32_t>(count);
  for_each_param<Config>([&](const auto& p) {
    using T = std::decay_t<decltype(c.*(p.member))>;
    using V = value_of_t<T>;
    const size_t n = std::strlen(p.name);
    w.put<uint8_t>(static_cast<uint8_t>(n));
    for (size_t i = 0; i < n; ++i) w.put<char>(p.name[i]);
    const auto& held = c.*(p.member);
    if constexpr (std::is_same_v<T, V>) {
      w.put<uint8_t>(params_file::kind_of<V>());
      w.put<uint64_t>(params_file::encode<V>(held));
    } else {
      w.put<uint8_t>(held ? params_file::kind_of<V>() : params_file::kUnset);
      w.put<uint64_t>(held ? params_file::encode<V>(*held) : 0);
    }
  });
}

template <class Config>
void read_params(IndexFileReader& r, Config& c) {
  struct Entry {
    uint8_t kind;
    uint64_t bits;
  };
  std::unordered_map<std::string, Entry> entries;
  const uint32_t count = r.get<uint32_t>();
  if (count > 1024) r.fail("implausible parameter count");
  for (uint32_t i = 0; i < count; ++i) {
    std::string name(r.get<uint8_t>(), '\0');
    for (char& ch : name) ch = r.get<char>();
    const uint8_t kind = r.get<uint8_t>();
    entries[name] = Entry{kind, r.get<uint64_t>()};
  }
  apply_defaults(c);
  for_each_param<Config>([&](const auto& p) {
    using T = std::decay_t<decltype(c.*(p.member))>;
    using V = value_of_t<T>;
    auto it = entries.find(p.name);
    if (it == entries.end()) return;
    const Entry e = it->second;
    entries.erase(it);
    if (e.kind == params_file::kUnset && !std::is_same_v<T, V>) {
      c.*(p.member) = T{};
      return;
    }
    if (e.kind != params_file::kind_of<V>()) r.fail(std::string("parameter ") + p.name + " has the wrong kind");
    if constexpr (std::is_enum_v<V>)
      if (e.bits >= std::size(EnumNames<V>::names)) r.fail(std::string("parameter ") + p.name + ": unknown value");
    c.*(p.member) = params_file::decode<V>(e.bits);
  });
  if (!entries.empty())
    r.fail("parameter '" + entries.begin()->first + "' is unknown to this build: written by a newer anisoscan");
}

// Versions 1 to 4 stored a fixed list of parameters; version 2 and earlier lack by_residual
// (their codes are residual).
inline void read_fixed_params(IndexFileReader& r, IndexParams& ip) {
  ip.nlist = r.get<uint64_t>();
  ip.with_raw_data = r.get<uint8_t>();
  ip.training_sample_size = r.get<uint64_t>();
  ip.kmeans_iters = r.get<int32_t>();
  ip.seed = r.get<uint64_t>();
  ip.sub_dim = r.get<uint64_t>();
  ip.anisotropic_threshold = r.get<double>();
  ip.exact_eta = r.get<uint8_t>();
  ip.anisotropic_codebooks = r.get<uint8_t>();
  ip.pq_iterations = r.get<int32_t>();
  ip.by_residual = r.version() >= 3 ? r.get<uint8_t>() != 0 : true;
}

}  // namespace anisoscan
