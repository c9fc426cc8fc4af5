// TensorRT-LLM shape filter: instance type table and the per-node file selection.

#include "modelagent/shape_filter.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace modelagent {

const InstanceTypeTable& default_instance_type_table() {
  static const InstanceTypeTable table = {
      {"BM.GPU.A10.4", "A10"},
      {"BM.GPU.A100-v2.8", "A100-80G"},
      {"BM.GPU4.8", "A100-40G"},
      {"BM.GPU.B4.8", "A100-40G"},
      {"BM.GPU.H100.8", "H100"},
      {"p5.48xlarge", "H100"},
      {"Standard_ND96isr_H100_v5", "H100"},
      {"a3-highgpu-8g", "H100"},
      {"gd-8xh100ib-i128", "H100"},
      {"gd-8xh200ib-i128", "H200"},
      {"gd-8xl40-i128", "L40"},
  };
  return table;
}

namespace {

std::string without_exception_tag(std::string message) {
  // nlohmann prefixes "[json.exception.parse_error.101] "; the rest says where and what.
  if (!message.empty() && message.front() == '[') {
    auto end = message.find("] ");
    if (end != std::string::npos) message.erase(0, end + 2);
  }
  return message;
}

}  // namespace

InstanceTypeTable parse_instance_type_map(std::string_view json_text, std::string_view origin) {
  const std::string where(origin);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json_text.begin(), json_text.end());
  } catch (const nlohmann::json::parse_error& error) {
    throw std::invalid_argument(where + ": not valid JSON: " + without_exception_tag(error.what()));
  }
  if (!doc.is_object()) {
    throw std::invalid_argument(where + ": must be a JSON object of instance type -> shape alias, got " +
                                std::string(doc.type_name()));
  }
  InstanceTypeTable table;
  for (const auto& [key, value] : doc.items()) {
    if (key.empty()) throw std::invalid_argument(where + ": an instance type is empty");
    if (!value.is_string()) {
      throw std::invalid_argument(where + ": the alias of \"" + key + "\" must be a string, got " +
                                  std::string(value.type_name()));
    }
    auto alias = value.get<std::string>();
    if (alias.empty() || alias.find('/') != std::string::npos) {
      throw std::invalid_argument(where + ": the alias of \"" + key + "\" must be a non-empty directory name, got \"" +
                                  alias + "\"");
    }
    table.emplace(key, std::move(alias));
  }
  return table;
}

InstanceTypeTable merge_instance_type_table(const InstanceTypeTable& extension) {
  InstanceTypeTable merged = default_instance_type_table();
  for (const auto& [type, alias] : extension) merged[type] = alias;
  return merged;
}

std::string shape_alias(std::string_view instance_type, const InstanceTypeTable& table) {
  auto it = table.find(instance_type);
  return it == table.end() ? std::string(instance_type) : it->second;
}

std::vector<std::string> known_shape_aliases(const InstanceTypeTable& table) {
  std::set<std::string> aliases;
  for (const auto& entry : table) aliases.insert(entry.second);
  return {aliases.begin(), aliases.end()};
}

ShapeFilterResult filter_by_shape(const std::vector<std::string>& paths, std::string_view alias,
                                  const std::vector<std::string>& known_aliases) {
  const std::set<std::string, std::less<>> known(known_aliases.begin(), known_aliases.end());
  std::set<std::string> others;
  ShapeFilterResult result;
  for (const auto& path : paths) {
    // The outermost directory segment naming a shape decides; the last segment is the file name.
    std::string_view shape;
    std::string_view rest(path);
    for (auto slash = rest.find('/'); slash != std::string_view::npos; slash = rest.find('/')) {
      std::string_view segment = rest.substr(0, slash);
      rest.remove_prefix(slash + 1);
      if ((!alias.empty() && segment == alias) || known.count(segment) != 0) {
        shape = segment;
        break;
      }
    }
    if (shape.empty()) {
      result.kept.push_back(path);
    } else if (!alias.empty() && shape == alias) {
      result.kept.push_back(path);
      ++result.shape_matches;
    } else {
      others.emplace(shape);
      std::string reason = "under shape directory " + std::string(shape) + "/, ";
      reason += alias.empty() ? std::string("this node has no shape") : "this node is " + std::string(alias);
      result.dropped.emplace_back(path, std::move(reason));
    }
  }
  result.other_shapes.assign(others.begin(), others.end());
  return result;
}

}  // namespace modelagent
