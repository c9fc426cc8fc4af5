#pragma once
// Internal to the model_*.cpp files: type-tolerant reads from a parsed config.json (a field of the
// wrong type reads as absent, so odd configs degrade to "unknown" instead of throwing) and the few
// functions the files share.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelagent::model_json {

using nlohmann::json;

// The member value, or nullptr when obj is not an object, the key is missing or the value is null.
inline const json* member(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

inline const json* object_member(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v && v->is_object() ? v : nullptr;
}

inline std::string string_member(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// A positive integer, also from an integral floating-point value (4096.0); nullopt otherwise.
inline std::optional<uint64_t> positive_integer(const json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    return u > 0 ? std::optional<uint64_t>(u) : std::nullopt;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    return i > 0 ? std::optional<uint64_t>(static_cast<uint64_t>(i)) : std::nullopt;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d >= 1 && d < 1.8e19 && std::floor(d) == d) return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

inline std::optional<uint64_t> positive_integer_member(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v ? positive_integer(*v) : std::nullopt;
}

inline bool true_member(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v && v->is_boolean() && v->get<bool>();
}

// The config object followed by the nested language-model configs of multimodal models.
inline std::vector<const json*> text_scopes(const json& config) {
  std::vector<const json*> scopes{&config};
  for (const char* key : {"text_config", "language_config", "llm_config"}) {
    if (const json* nested = object_member(config, key)) scopes.push_back(nested);
  }
  return scopes;
}

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// model_type (TensorRT-LLM: pretrained_config.model_type); "" when absent. Defined in model_metadata.cpp.
std::string model_type_of(const json& config);
// architectures[0] (a bare string is accepted; TensorRT-LLM: pretrained_config.architecture), else the
// class OME assumes for the model type, else "". Defined in model_metadata.cpp.
std::string architecture_of(const json& config);
// torch_dtype name for the safetensors dtype holding the most parameters (BF16 -> bfloat16, ...); "" for
// quantized or unknown dtypes. Defined in model_metadata.cpp.
std::string torch_dtype_from_dtypes(const std::map<std::string, uint64_t>& dtype_parameters);

}  // namespace modelagent::model_json

namespace modelagent {
struct ModelMetadata;
// A diffusers pipeline from its model_index.json. Defined in model_diffusers.cpp.
ModelMetadata diffusers_metadata(const std::filesystem::path& index_file, const nlohmann::json& index);
}  // namespace modelagent
