// Configs (kernels/params.h) to and from Python dicts, and their declarations as a schema,
// all driven by the declarations: a new parameter needs nothing here.
#pragma once

#include <pybind11/pybind11.h>

#include <iterator>
#include <set>
#include <string>
#include <type_traits>

#include "params.h"

namespace anisoscan::bindings {

namespace detail {

template <class V>
const char* type_name() {
  if constexpr (std::is_enum_v<V>) return "str";
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

// Python's value of a member: enums by name, the rest as they are.
template <class T>
pybind11::object to_python(const T& value) {
  if constexpr (std::is_enum_v<T>) {
    return pybind11::str(EnumNames<T>::names[static_cast<size_t>(value)]);
  } else {
    return pybind11::cast(value);
  }
}

template <class T>
T from_python(const char* name, const pybind11::handle& value) {
  namespace py = pybind11;
  try {
    if constexpr (std::is_enum_v<T>) {
      const std::string text = value.cast<std::string>();
      std::string choices;
      for (size_t i = 0; i < std::size(EnumNames<T>::names); ++i) {
        if (text == EnumNames<T>::names[i]) return static_cast<T>(i);
        choices += (i ? ", " : "") + std::string(EnumNames<T>::names[i]);
      }
      throw std::invalid_argument(std::string(name) + ": '" + text + "' is not one of " + choices);
    } else {
      return value.cast<T>();
    }
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(name) + ": expected " + type_name<value_of_t<T>>() + ", got " +
                         std::string(py::str(py::type::handle_of(value).attr("__name__"))));
  }
}

}  // namespace detail

// The declarations as a list of dicts: name, type, default (None: derived), min, max (None:
// unbounded), choices (an enum's names, else None), phase, description, derived (how an
// unset default is resolved, or None).
template <class Config>
void append_schema(pybind11::list& out) {
  namespace py = pybind11;
  for_each_param<Config>([&out](const auto& p) {
    using T = std::decay_t<decltype(p.default_value)>;
    using V = value_of_t<T>;
    py::dict d;
    d["name"] = p.name;
    d["type"] = detail::type_name<V>();
    d["default"] = detail::to_python(p.default_value);
    constexpr bool unranged = std::is_same_v<V, bool> || std::is_enum_v<V>;
    d["min"] = unranged ? py::object(py::none()) : detail::bound<V>(p.min);
    d["max"] = unranged ? py::object(py::none()) : detail::bound<V>(p.max);
    py::list choices;
    if constexpr (std::is_enum_v<V>)
      for (const char* name : EnumNames<V>::names) choices.append(name);
    d["choices"] = choices.empty() ? py::object(py::none()) : py::object(choices);
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
    c.*(p.member) = detail::from_python<T>(p.name, values[p.name]);
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
  for_each_param<Config>([&](const auto& p) { out[p.name] = detail::to_python(c.*(p.member)); });
}

}  // namespace anisoscan::bindings
