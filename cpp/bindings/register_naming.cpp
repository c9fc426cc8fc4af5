// OME label keys, ConfigMap keys, label values and Kubernetes name checks.

#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings.hpp"
#include "modelagent/naming.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

std::optional<std::string> problem_or_none(std::string problem) {
  if (problem.empty()) return std::nullopt;
  return problem;
}

}  // namespace

void register_naming(py::module_& m) {
  m.def(
      "node_label_key",
      [](std::string_view kind, std::string_view name, std::optional<std::string> namespace_name) {
        return node_label_key(parse_model_kind(kind), name, namespace_name.value_or(""));
      },
      py::arg("kind"), py::arg("name"), py::arg("namespace") = py::none(),
      "The node label key OME uses for a model: kind is 'BaseModel' (namespace required) or 'ClusterBaseModel'\n"
      "(no namespace). Long names are truncated and hashed exactly as OME does. Raises ValueError.");
  m.def(
      "configmap_key",
      [](std::string_view kind, std::string_view name, std::optional<std::string> namespace_name) {
        return configmap_key(parse_model_kind(kind), name, namespace_name.value_or(""));
      },
      py::arg("kind"), py::arg("name"), py::arg("namespace") = py::none(),
      "The key of a model's entry in the per-node ConfigMap, as OME computes it. Raises ValueError.");
  m.def(
      "parse_configmap_key",
      [](std::string_view key) -> py::object {
        auto parsed = parse_configmap_key(key);
        if (!parsed) return py::none();
        py::object ns = parsed->kind == ModelKind::BaseModel ? py::object(py::str(parsed->namespace_name)) : py::none();
        return py::make_tuple(std::string(model_kind_name(parsed->kind)), ns, parsed->name);
      },
      py::arg("key"),
      "Read a ConfigMap key back as the OME controller does: (kind, namespace or None, name), or None when the\n"
      "key is not a model key. Truncated keys give truncated parts.");
  m.def("node_label_value", &node_label_value, py::arg("status"),
        "The node label value for a model status ('Ready', 'Updating', 'Failed'); None for 'Deleted' (the label\n"
        "is removed). Raises ValueError for other statuses.");
  m.def("truncate_with_hash", &truncate_with_hash, py::arg("s"), py::arg("max_len"),
        "OME's truncation: s if it fits, else 8 hex digits of SHA-256(s), '-' and the tail of s (bare hash when\n"
        "max_len <= 9).");
  m.def("is_valid_label_key", &is_valid_label_key, py::arg("key"),
        "Whether key is a valid Kubernetes label key (qualified name).");
  m.def("is_valid_label_value", &is_valid_label_value, py::arg("value"),
        "Whether value is a valid Kubernetes label value.");
  m.def("is_valid_configmap_key", &is_valid_configmap_key, py::arg("key"),
        "Whether key is a valid ConfigMap data key.");
  m.def(
      "label_key_problem", [](std::string_view key) { return problem_or_none(label_key_problem(key)); },
      py::arg("key"), "Why key is not a valid label key, or None when it is.");
  m.def(
      "label_value_problem", [](std::string_view value) { return problem_or_none(label_value_problem(value)); },
      py::arg("value"), "Why value is not a valid label value, or None when it is.");
  m.def(
      "configmap_key_problem", [](std::string_view key) { return problem_or_none(configmap_key_problem(key)); },
      py::arg("key"), "Why key is not a valid ConfigMap key, or None when it is.");
}

}  // namespace modelagent::bindings
