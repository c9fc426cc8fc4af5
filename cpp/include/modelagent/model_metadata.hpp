#pragma once
// Model metadata from a model directory: config.json (or a diffusers model_index.json), the weight
// files beside it and their safetensors headers. docs/model-metadata.md states every rule used here.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelagent/model_entry.hpp"  // NameVersion, ModelConfig

namespace modelagent {

// {name, version}; version stays unset when empty.
NameVersion name_version(std::string name, std::string version = {});

// ---- Locating and loading the configuration -------------------------------------------------------

struct ModelConfigLocation {
  std::filesystem::path file;  // the config.json or model_index.json that was chosen
  bool diffusers = false;      // file is a diffusers pipeline index (model_index.json)
};

// Limits of the fallback walk below the model directory.
struct ConfigWalkLimits {
  int max_depth = 4;              // config.json at most 4 directories below the model directory
  std::size_t max_entries = 20000;  // directory entries looked at, in total
};
inline constexpr std::uintmax_t kMaxConfigJsonBytes = 64ull * 1024 * 1024;

// path is a model directory (or directly a config file). Search order: <dir>/config.json,
// <dir>/model_index.json, <dir>/{safetensors,pytorch_model,model}/config.json, then a breadth-first
// walk (no symlinked directories, no hidden directories; directories visited in name order) that
// picks the shallowest candidate, ties broken by the lexicographic order of the relative path. Throws ModelConfigError
// ("config.json not found in <dir>", or the directory is missing / not a directory).
ModelConfigLocation locate_model_config(const std::filesystem::path& path, const ConfigWalkLimits& limits = {});

// Parses a JSON configuration file that must hold an object. Throws ModelConfigError naming the file
// and, for malformed JSON, the line, column and byte offset.
nlohmann::json load_config_json(const std::filesystem::path& file);

// ---- Facts derived from config.json alone ----------------------------------------------------------

struct QuantizationInfo {
  std::string method;  // gptq, awq, fp8, fbgemm_fp8, compressed-tensors, bitsandbytes, mxfp4, ...; "" = none
  std::string scheme;  // e.g. w4a16, fp8, nf4, e4m3; "" when not known
  int bits = 0;        // weight bits; 0 when not known
  std::string source;  // where it was found, e.g. "config.json quantization_config"
  bool quantized() const { return !method.empty(); }
};

// From quantization_config (root or text_config), compression_config, TensorRT-LLM's
// pretrained_config.quantization, or ChatGLM's quantization_bit.
QuantizationInfo detect_quantization(const nlohmann::json& config);
// From side files of the model directory: quantize_config.json (AutoGPTQ), quant_config.json
// (AutoAWQ), hf_quant_config.json (NVIDIA ModelOpt).
QuantizationInfo detect_quantization_sidecar(const std::filesystem::path& dir);
// From the dtype holding the most parameters (F8_E4M3 / F8_E5M2 -> fp8, I8 -> int8, F4 -> fp4).
QuantizationInfo quantization_from_dtypes(const std::map<std::string, uint64_t>& dtype_parameters);
// The BaseModel CRD value: "fp8", "fbgemm_fp8", "int4" or "" (everything else).
std::string quantization_crd_value(const QuantizationInfo& quantization);

// max_position_embeddings, else seq_length / max_seq_len / n_positions / max_sequence_length / n_ctx /
// model_max_length; in the root object, then text_config, language_config, llm_config. Baichuan prefers
// model_max_length. TensorRT-LLM engines: build_config.max_seq_len. 0 when none is present.
uint64_t context_length(const nlohmann::json& config);

// True when a vision tower is configured.
bool has_vision(const nlohmann::json& config);

// One capability, as OME reports it: VISION, TEXT_RERANK (sequence classification and reward models),
// TEXT_EMBEDDINGS (encoders, base-model classes, is_causal=false, sentence-transformers) or CHAT.
std::vector<std::string> detect_capabilities(const nlohmann::json& config,
                                             bool sentence_transformers = false);

// Size string with units K, M, B, T (powers of 1000), at most two decimals (round half up), trailing
// zeros dropped; a value that rounds to 1000 of a unit moves to the next unit. 8030261248 -> "8.03B".
std::string format_parameter_size(uint64_t count);

// ---- Weight files ----------------------------------------------------------------------------------

struct WeightFiles {
  NameVersion format;  // name "" when no weight file was recognised
  std::vector<std::filesystem::path> files;  // the files counted in total_bytes (sorted)
  uint64_t total_bytes = 0;                  // their sizes on disk
};

// The weight format in dir (not recursive, except ONNX's onnx/ sub-folder) and its files, first match
// wins: TensorRT-LLM (config has pretrained_config/build_config, or *.engine files) -> {tensorrtllm,
// <config version>}; safetensors -> {safetensors, 1.0.0}; PyTorch *.bin/*.pt/*.pth -> {pytorch};
// *.gguf -> {gguf, <header version>}; *.onnx -> {onnx}.
WeightFiles detect_weight_files(const std::filesystem::path& dir, const nlohmann::json& config);

// The version field of a GGUF file header. Throws ModelConfigError naming the file when it is not GGUF.
uint32_t read_gguf_version(const std::filesystem::path& file);

// ---- The metadata ----------------------------------------------------------------------------------

struct ModelMetadata {
  std::string model_type;
  std::string architecture;
  NameVersion framework;  // {transformers, transformers_version}, {diffusers, ...}, {tensorrtllm, ...}
  NameVersion format;     // detected from the files
  uint64_t parameter_count = 0;     // 0 = unknown
  std::string parameter_size;       // format_parameter_size(parameter_count); "" when unknown
  std::string parameter_count_source;  // "safetensors", "estimate" or "" (unknown)
  uint64_t context_length = 0;      // 0 = unknown
  std::vector<std::string> capabilities;
  bool has_vision = false;
  std::string quantization;         // CRD value (quantization_crd_value of quantization_detail)
  QuantizationInfo quantization_detail;
  std::string torch_dtype;
  std::string transformers_version;
  uint64_t model_size_bytes = 0;    // sum of the sizes on disk of weight_files
  std::vector<std::filesystem::path> weight_files;
  std::filesystem::path config_path;
  std::filesystem::path model_dir;  // the directory holding config_path
};

// Everything config.json alone tells: type, architecture, framework, context length, capabilities
// (without the sentence-transformers side files), vision, quantization, dtype, transformers version.
ModelMetadata metadata_from_config(const nlohmann::json& config);

// The full inspection of a model directory (or config file). Parameter count: exact from the
// safetensors headers when present, else estimate_parameters(config). Throws ModelConfigError or
// SafetensorsError naming the file at fault.
ModelMetadata inspect_model(const std::filesystem::path& path);

// The summary OME stores as spec.modelConfiguration / decodedModelConfiguration: exactly model_type,
// architecture, context_length, parameter_count (size string), has_vision, transformers_version,
// torch_dtype, model_size_bytes — plus "quantization" {method, scheme, bits} only when quantized.
nlohmann::json decoded_summary(const ModelMetadata& metadata);

// The ConfigMap entry's "config" for this metadata: maxTokens is the context length capped at INT32_MAX,
// framework/format are left unset when unknown, decodedModelConfiguration is decoded_summary().
ModelConfig to_model_config(const ModelMetadata& metadata);

}  // namespace modelagent
