// TensorRT-LLM shape filter: instance type table and per-node file selection.

#include <pybind11/stl.h>

#include <map>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "modelagent/shape_filter.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

std::map<std::string, std::string> as_dict(const InstanceTypeTable& table) { return {table.begin(), table.end()}; }

InstanceTypeTable as_table(const std::map<std::string, std::string>& dict) { return {dict.begin(), dict.end()}; }

}  // namespace

void register_shape_filter(py::module_& m) {
  py::class_<ShapeFilterResult>(m, "ShapeFilterResult",
                                "The outcome of filter_by_shape(): files kept and dropped for one node's shape.")
      .def_readonly("kept", &ShapeFilterResult::kept,
                    "Paths to download (this node's shape and shape-agnostic files), in input order.")
      .def_readonly("dropped", &ShapeFilterResult::dropped, "(path, reason) of every file left out, in input order.")
      .def_readonly("shape_matches", &ShapeFilterResult::shape_matches,
                    "How many kept paths are under this node's shape directory.")
      .def_readonly("other_shapes", &ShapeFilterResult::other_shapes,
                    "Known shapes other than this node's that have files in the listing, sorted.")
      .def("__repr__", [](const ShapeFilterResult& r) {
        return "<ShapeFilterResult kept=" + std::to_string(r.kept.size()) +
               " dropped=" + std::to_string(r.dropped.size()) + " shape_matches=" + std::to_string(r.shape_matches) +
               ">";
      });
  m.def(
      "default_instance_type_table", [] { return as_dict(default_instance_type_table()); },
      "OME's built-in instance type -> TensorRT-LLM shape alias table.");
  m.def(
      "parse_instance_type_map",
      [](std::string_view text, std::string_view origin) { return as_dict(parse_instance_type_map(text, origin)); },
      py::arg("text"), py::arg("origin"),
      "Parse an INSTANCE_TYPE_MAP JSON object (instance type -> alias). ValueError naming origin when malformed.");
  m.def(
      "merge_instance_type_table",
      [](const std::map<std::string, std::string>& extension) {
        return as_dict(merge_instance_type_table(as_table(extension)));
      },
      py::arg("extension"), "The default table with extension's entries added or replacing defaults.");
  m.def(
      "shape_alias",
      [](std::string_view instance_type, const std::map<std::string, std::string>& table) {
        return shape_alias(instance_type, as_table(table));
      },
      py::arg("instance_type"), py::arg("table"),
      "The shape alias of instance_type in table, or instance_type itself when the table lacks it.");
  m.def(
      "known_shape_aliases",
      [](const std::map<std::string, std::string>& table) { return known_shape_aliases(as_table(table)); },
      py::arg("table"), "Every alias of table, sorted, without duplicates.");
  m.def("filter_by_shape", &filter_by_shape, py::arg("paths"), py::arg("alias"), py::arg("known_aliases"),
        "Keep files under this node's shape directory (a directory segment equal to alias) and files under no\n"
        "known shape directory; drop files under another known shape. Returns a ShapeFilterResult.");
}

}  // namespace modelagent::bindings
