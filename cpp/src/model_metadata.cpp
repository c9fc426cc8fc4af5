// Model metadata: config.json facts combined with the weight files and their safetensors headers.

#include <algorithm>
#include <limits>
#include <string>
#include <system_error>

#include "model_json.hpp"
#include "modelagent/model_metadata.hpp"
#include "modelagent/parameter_estimate.hpp"
#include "modelagent/weights.hpp"

namespace modelagent {

namespace fs = std::filesystem;

namespace model_json {

std::string model_type_of(const json& config) {
  std::string type = string_member(config, "model_type");
  if (type.empty()) {
    if (const json* pretrained = object_member(config, "pretrained_config")) {
      type = string_member(*pretrained, "model_type");
    }
  }
  return type;
}

std::string architecture_of(const json& config) {
  if (const json* archs = member(config, "architectures")) {
    if (archs->is_string()) return archs->get<std::string>();
    if (archs->is_array() && !archs->empty() && (*archs)[0].is_string()) return (*archs)[0].get<std::string>();
  }
  if (const json* pretrained = object_member(config, "pretrained_config")) {
    std::string arch = string_member(*pretrained, "architecture");
    if (!arch.empty()) return arch;
  }
  // The classes OME's parser assumes when architectures is empty (mistral excepted: OME says
  // MistralModel, the embedding base class; a mistral config without architectures is a causal LM).
  static const std::map<std::string, std::string> kDefaults = {
      {"llama", "LlamaForCausalLM"},
      {"mistral", "MistralForCausalLM"},
      {"mixtral", "MixtralForCausalLM"},
      {"llama4", "Llama4ForConditionalGeneration"},
      {"mllama", "MllamaForConditionalGeneration"},
      {"dbrx", "DbrxForCausalLM"},
      {"deepseek_vl_v2", "DeepseekVLV2ForCausalLM"},
      {"janus", "JanusMultiModalityCausalLM"},
      {"multi_modality", "JanusMultiModalityCausalLM"},
      {"deepseek_vl", "DeepseekVLForCausalLM"},
  };
  auto it = kDefaults.find(model_type_of(config));
  return it == kDefaults.end() ? std::string() : it->second;
}

std::string torch_dtype_from_dtypes(const std::map<std::string, uint64_t>& dtype_parameters) {
  static const std::map<std::string, std::string> kNames = {
      {"BF16", "bfloat16"}, {"F16", "float16"}, {"F32", "float32"}, {"F64", "float64"}};
  const std::string* top = nullptr;
  uint64_t most = 0;
  for (const auto& [dtype, params] : dtype_parameters) {
    if (params > most) {
      most = params;
      top = &dtype;
    }
  }
  if (!top) return "";
  auto it = kNames.find(*top);
  return it == kNames.end() ? std::string() : it->second;
}

}  // namespace model_json

using namespace model_json;

namespace {

std::string normalized_dtype(std::string dtype) {
  if (dtype.rfind("torch.", 0) == 0) dtype.erase(0, 6);
  return dtype;
}

std::string config_dtype(const json& config) {
  if (const json* pretrained = object_member(config, "pretrained_config")) {
    std::string dtype = string_member(*pretrained, "dtype");
    if (!dtype.empty()) return normalized_dtype(dtype);
  }
  for (const json* scope : text_scopes(config)) {
    for (const char* key : {"torch_dtype", "dtype"}) {
      std::string dtype = string_member(*scope, key);
      if (!dtype.empty()) return normalized_dtype(dtype);
    }
  }
  return "";
}

std::string config_transformers_version(const json& config) {
  for (const json* scope : text_scopes(config)) {
    std::string version = string_member(*scope, "transformers_version");
    if (!version.empty()) return version;
  }
  return "";
}

bool regular_file_at(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// What estimate_parameters is given: the config itself, or for a TensorRT-LLM engine its
// pretrained_config (the Hugging Face fields of the source model) with the architecture added.
json estimation_input(const json& config) {
  const json* pretrained = object_member(config, "pretrained_config");
  if (!pretrained) return config;
  json input = *pretrained;
  std::string arch = string_member(*pretrained, "architecture");
  if (!arch.empty() && !member(input, "architectures")) input["architectures"] = json::array({arch});
  return input;
}

}  // namespace

NameVersion name_version(std::string name, std::string version) {
  NameVersion out;
  out.name = std::move(name);
  if (!version.empty()) out.version = std::move(version);
  return out;
}

ModelMetadata metadata_from_config(const json& config) {
  ModelMetadata m;
  m.model_type = model_type_of(config);
  m.architecture = architecture_of(config);
  m.transformers_version = config_transformers_version(config);
  if (object_member(config, "pretrained_config")) {
    m.framework = name_version("tensorrtllm", string_member(config, "version"));
  } else {
    m.framework = name_version("transformers", m.transformers_version);
  }
  m.context_length = context_length(config);
  m.has_vision = has_vision(config);
  m.capabilities = detect_capabilities(config, false);
  m.quantization_detail = detect_quantization(config);
  m.quantization = quantization_crd_value(m.quantization_detail);
  m.torch_dtype = config_dtype(config);
  return m;
}

ModelMetadata inspect_model(const fs::path& path) {
  ModelConfigLocation location = locate_model_config(path);
  json config = load_config_json(location.file);
  if (location.diffusers) return diffusers_metadata(location.file, config);

  ModelMetadata m = metadata_from_config(config);
  m.config_path = location.file;
  m.model_dir = location.file.parent_path();
  const fs::path& dir = m.model_dir;

  if (!m.quantization_detail.quantized()) m.quantization_detail = detect_quantization_sidecar(dir);

  bool sentence_transformers =
      regular_file_at(dir / "modules.json") || regular_file_at(dir / "config_sentence_transformers.json");
  m.capabilities = detect_capabilities(config, sentence_transformers);

  WeightFiles weights = detect_weight_files(dir, config);
  m.format = weights.format;
  m.model_size_bytes = weights.total_bytes;
  m.weight_files = weights.files;

  if (weights.format.name == "safetensors") {
    QuantizationHint hint{m.quantization_detail.method, m.quantization_detail.bits};
    WeightsSummary summary = summarize_safetensors(weights.files, hint);
    if (summary.parameter_count > 0) {
      m.parameter_count = summary.parameter_count;
      m.parameter_count_source = "safetensors";
    }
    if (!m.quantization_detail.quantized()) m.quantization_detail = quantization_from_dtypes(summary.dtype_parameters);
    if (m.torch_dtype.empty()) m.torch_dtype = torch_dtype_from_dtypes(summary.dtype_parameters);
  }
  if (m.parameter_count == 0) {
    if (auto estimate = estimate_parameters(estimation_input(config)); estimate && *estimate > 0) {
      m.parameter_count = *estimate;
      m.parameter_count_source = "estimate";
    }
  }
  m.parameter_size = m.parameter_count ? format_parameter_size(m.parameter_count) : "";
  m.quantization = quantization_crd_value(m.quantization_detail);
  return m;
}

json decoded_summary(const ModelMetadata& m) {
  json summary = {
      {"model_type", m.model_type},
      {"architecture", m.architecture},
      {"context_length", m.context_length},
      {"parameter_count", m.parameter_size},
      {"has_vision", m.has_vision},
      {"transformers_version", m.transformers_version},
      {"torch_dtype", m.torch_dtype},
      {"model_size_bytes", m.model_size_bytes},
  };
  if (m.quantization_detail.quantized()) {
    summary["quantization"] = {{"method", m.quantization_detail.method},
                               {"scheme", m.quantization_detail.scheme},
                               {"bits", m.quantization_detail.bits}};
  }
  return summary;
}

ModelConfig to_model_config(const ModelMetadata& m) {
  ModelConfig config;
  config.model_type = m.model_type;
  config.model_architecture = m.architecture;
  if (!m.framework.name.empty()) config.model_framework = m.framework;
  if (!m.format.name.empty()) config.model_format = m.format;
  config.model_parameter_size = m.parameter_size;
  config.max_tokens = static_cast<int32_t>(std::min<uint64_t>(m.context_length, std::numeric_limits<int32_t>::max()));
  config.model_capabilities = m.capabilities;
  config.decoded_model_configuration = decoded_summary(m);
  config.quantization = m.quantization;
  return config;
}

}  // namespace modelagent
