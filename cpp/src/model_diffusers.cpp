// Diffusers pipelines: model_index.json names the components, each in its own sub-folder.

#include <string>
#include <system_error>

#include "model_json.hpp"
#include "modelagent/model_metadata.hpp"
#include "modelagent/weights.hpp"

namespace modelagent {

using namespace model_json;
namespace fs = std::filesystem;

namespace {

// A component name usable as a single path segment below the pipeline directory.
bool plain_segment(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

ModelMetadata diffusers_metadata(const fs::path& index_file, const json& index) {
  ModelMetadata m;
  m.model_type = "diffusers";
  m.architecture = string_member(index, "_class_name");
  m.framework = name_version("diffusers", string_member(index, "_diffusers_version"));
  m.capabilities = {"TEXT_TO_IMAGE"};
  m.config_path = index_file;
  m.model_dir = index_file.parent_path();

  uint64_t parameters = 0;
  bool every_component_counted = true;
  std::map<std::string, uint64_t> dtype_parameters;
  // Components are ["library", "ClassName"] pairs; keys starting with "_" are pipeline attributes.
  for (const auto& [name, value] : index.items()) {
    if (name[0] == '_' || !plain_segment(name)) continue;
    if (!value.is_array() || value.size() != 2 || !value[0].is_string()) continue;
    fs::path component = m.model_dir / name;
    std::error_code ec;
    if (!fs::is_directory(component, ec)) continue;
    WeightFiles weights = detect_weight_files(component, json::object());
    if (weights.files.empty()) continue;
    if (m.format.name.empty() || weights.format.name == "safetensors") m.format = weights.format;
    m.model_size_bytes += weights.total_bytes;
    m.weight_files.insert(m.weight_files.end(), weights.files.begin(), weights.files.end());
    if (weights.format.name != "safetensors") {
      every_component_counted = false;
      continue;
    }
    // Tensor names repeat across components (conv_in.weight in unet and vae), so each component is
    // summarized on its own; within one, fp16 variants of the same tensors count once.
    WeightsSummary summary = summarize_safetensors(weights.files, {});
    parameters += summary.parameter_count;
    for (const auto& [dtype, count] : summary.dtype_parameters) dtype_parameters[dtype] += count;
  }
  if (every_component_counted && parameters > 0) {
    m.parameter_count = parameters;
    m.parameter_count_source = "safetensors";
    m.parameter_size = format_parameter_size(parameters);
  }
  m.torch_dtype = torch_dtype_from_dtypes(dtype_parameters);
  return m;
}

}  // namespace modelagent
