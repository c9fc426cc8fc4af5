#pragma once
// TensorRT-LLM shape filter: which files of a model listing belong on a node of a given GPU shape.
//
// A TensorRT-LLM model in an object store keeps one engine directory per GPU shape ("H100/",
// "A100-80G/", ...) beside shape-agnostic files (tokenizer, config). A node needs its own shape's
// engines and the agnostic files, never another shape's engines.
//
// Instance types (the node label node.kubernetes.io/instance-type) map to shape aliases through a table:
// OME's defaults, extended or overridden by the operator's INSTANCE_TYPE_MAP. An instance type missing
// from the table is its own alias.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelagent {

using InstanceTypeTable = std::map<std::string, std::string, std::less<>>;

// OME v0.1.3's built-in instance type -> shape alias table.
const InstanceTypeTable& default_instance_type_table();

// Parse an INSTANCE_TYPE_MAP document: a JSON object of non-empty instance type -> non-empty alias strings.
// `origin` names where the text came from (environment variable, file, flag) and appears in every error.
// Throws std::invalid_argument for malformed JSON, a non-object, an empty key or a value that is not a
// non-empty string without '/'.
InstanceTypeTable parse_instance_type_map(std::string_view json_text, std::string_view origin);

// The defaults with `extension` laid over them (an extension entry replaces a default of the same type).
InstanceTypeTable merge_instance_type_table(const InstanceTypeTable& extension);

// The alias of `instance_type` in `table`, or the instance type itself when the table has no entry.
std::string shape_alias(std::string_view instance_type, const InstanceTypeTable& table);

// Every alias of `table`, sorted and without duplicates.
std::vector<std::string> known_shape_aliases(const InstanceTypeTable& table);

struct ShapeFilterResult {
  // Paths to download, in input order: files under this node's shape directory and shape-agnostic files.
  std::vector<std::string> kept;
  // Paths left out, in input order, each with the reason ("under shape directory A100-80G/, this node is H100").
  std::vector<std::pair<std::string, std::string>> dropped;
  // How many kept paths are under this node's shape directory (zero means the model has nothing for it).
  std::size_t shape_matches = 0;
  // Known shapes other than this node's that have files in the listing, sorted.
  std::vector<std::string> other_shapes;
};

// Split `paths` ('/'-separated, relative to the model) for a node whose shape alias is `alias`.
//
// A path belongs to a shape when one of its directory segments (not the file name) equals that shape's
// alias exactly (case-sensitive; "H100" is not "H1000" nor "xH100"); the outermost such segment decides.
// Shapes are `alias` and every entry of `known_aliases`. Files under `alias` are kept, files under another
// shape are dropped, files under no shape directory are shape-agnostic and kept. An empty `alias` matches
// nothing, so every shaped file is dropped.
ShapeFilterResult filter_by_shape(const std::vector<std::string>& paths, std::string_view alias,
                                  const std::vector<std::string>& known_aliases);

}  // namespace modelagent
