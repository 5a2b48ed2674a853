// Configs (kernels/params.h) to and from Python dicts, and their declarations as a schema,
// all driven by the declarations: a new parameter needs nothing here.
#pragma once

#include <pybind11/pybind11.h>

#include <set>
#include <string>
#include <type_traits>

#include "params.h"

namespace anisoscan::bindings {

namespace detail {

template <class V>
const char* type_name() {
  if constexpr (std::is_same_v<V, bool>) return "bool";
  if constexpr (std::is_floating_point_v<V>) return "float";
  return "int";
}

template <class V>
pybind11::object bound(double b) {
  if (b == kUnbounded) return pybind11::none();
  if constexpr (std::is_floating_point_v<V>) return pybind11::float_(b);
  return pybind11::int_(static_cast<long long>(b));
}

}  // namespace detail

// The declarations as a list of dicts: name, type, default (None: derived), min, max (None:
// unbounded), phase, description, derived (how an unset default is resolved, or None).
template <class Config>
void append_schema(pybind11::list& out) {
  namespace py = pybind11;
  for_each_param<Config>([&out](const auto& p) {
    using T = std::decay_t<decltype(p.default_value)>;
    using V = value_of_t<T>;
    py::dict d;
    d["name"] = p.name;
    d["type"] = detail::type_name<V>();
    d["default"] = py::cast(p.default_value);
    const bool is_bool = std::is_same_v<V, bool>;
    d["min"] = is_bool ? py::object(py::none()) : detail::bound<V>(p.min);
    d["max"] = is_bool ? py::object(py::none()) : detail::bound<V>(p.max);
    d["phase"] = p.phase == Phase::kBuild ? "build" : "search";
    d["description"] = p.description;
    d["derived"] = p.derived ? py::object(py::str(p.derived)) : py::object(py::none());
    out.append(d);
  });
}

// Sets the config from a dict of already-typed values (Python coerces leniently first); a
// key that no declaration names is an error listing the known ones.
template <class Config>
void set_from_dict(Config& c, const pybind11::dict& values) {
  namespace py = pybind11;
  std::set<std::string> known;
  for_each_param<Config>([&](const auto& p) {
    known.insert(p.name);
    if (!values.contains(p.name)) return;
    using T = std::decay_t<decltype(c.*(p.member))>;
    try {
      c.*(p.member) = values[p.name].template cast<T>();
    } catch (const py::cast_error&) {
      throw py::type_error(std::string(p.name) + ": expected " + detail::type_name<value_of_t<T>>() + ", got " +
                           std::string(py::str(values[p.name].get_type().attr("__name__"))));
    }
  });
  for (const auto& item : values) {
    const std::string key = py::str(item.first);
    if (known.count(key)) continue;
    std::string list;
    for (const auto& name : known) list += (list.empty() ? "" : ", ") + name;
    throw std::invalid_argument("params: unknown key '" + key + "'; known keys are " + list);
  }
}

template <class Config>
void put_into_dict(const Config& c, pybind11::dict& out) {
  for_each_param<Config>([&](const auto& p) { out[p.name] = pybind11::cast(c.*(p.member)); });
}

}  // namespace anisoscan::bindings
