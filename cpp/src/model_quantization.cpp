// Quantization method and scheme from config.json, side files or safetensors dtypes, and the CRD value.

#include <string>

#include "model_json.hpp"
#include "modelagent/model_metadata.hpp"

namespace modelagent {

using namespace model_json;
namespace fs = std::filesystem;

namespace {

int small_bits(const json& obj, std::string_view key) {
  auto n = positive_integer_member(obj, key);
  return n && *n <= 64 ? static_cast<int>(*n) : 0;
}

int bits_field(const json& q) {
  for (const char* key : {"bits", "w_bit", "nbits", "weight_bits", "num_bits"}) {
    if (int b = small_bits(q, key)) return b;
  }
  return 0;
}

std::string weight_only_scheme(int bits) { return bits ? "w" + std::to_string(bits) + "a16" : ""; }

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// compressed-tensors: the first config group (by name) that quantizes weights defines the scheme:
// float 8-bit -> fp8; float 4-bit -> nvfp4/mxfp4/fp4; integers -> w<bits>a<activation bits or 16>.
void compressed_tensors_scheme(const json& q, QuantizationInfo& info) {
  std::string format = lower(string_member(q, "format"));
  if (const json* groups = object_member(q, "config_groups")) {
    for (const auto& [name, group] : groups->items()) {
      const json* weights = object_member(group, "weights");
      if (!weights) continue;
      int wbits = small_bits(*weights, "num_bits");
      std::string wtype = lower(string_member(*weights, "type"));
      info.bits = wbits;
      if (wtype == "float") {
        if (wbits == 8) {
          info.scheme = "fp8";
        } else if (wbits == 4) {
          info.scheme = contains(format, "mxfp4") ? "mxfp4" : "nvfp4";
          bool nvfp4_groups = positive_integer_member(*weights, "group_size").value_or(0) == 16;
          if (!contains(format, "fp4") && !nvfp4_groups) info.scheme = "fp4";
        } else if (wbits) {
          info.scheme = "fp" + std::to_string(wbits);
        }
      } else if (wbits) {
        int abits = 16;
        if (const json* acts = object_member(group, "input_activations")) {
          if (int b = small_bits(*acts, "num_bits")) abits = b;
        }
        info.scheme = "w" + std::to_string(wbits) + "a" + std::to_string(abits);
      }
      return;
    }
  }
  if (format == "float-quantized") {
    info.scheme = "fp8";
    info.bits = 8;
  } else if (format == "int-quantized") {
    info.scheme = "w8a8";
    info.bits = 8;
  }
}

// NVIDIA ModelOpt / TensorRT-LLM quant_algo names: FP8, FP8_PER_CHANNEL_PER_TOKEN, NVFP4, W4A16_AWQ,
// W4A8_AWQ, W4A16_GPTQ, W8A16, W8A8_SQ_PER_CHANNEL, ...
void quant_algo_scheme(const std::string& algo, QuantizationInfo& info) {
  if (starts_with(algo, "fp8")) {
    info.scheme = "fp8";
    info.bits = 8;
  } else if (starts_with(algo, "nvfp4")) {
    info.scheme = "nvfp4";
    info.bits = 4;
  } else if (algo.size() >= 4 && algo[0] == 'w' && algo[1] >= '1' && algo[1] <= '8' && algo[2] == 'a') {
    std::size_t end = algo.find('_');
    info.scheme = algo.substr(0, end);
    info.bits = algo[1] - '0';
  } else {
    info.scheme = algo;
  }
}

QuantizationInfo from_quantization_config(const json& q, const std::string& source) {
  QuantizationInfo info;
  info.source = source;
  std::string method = lower(string_member(q, "quant_method"));
  if (method.empty()) {
    if (true_member(q, "load_in_4bit") || true_member(q, "load_in_8bit")) {
      method = "bitsandbytes";
    } else if (object_member(q, "config_groups")) {
      method = "compressed-tensors";
    } else if (!string_member(q, "quant_algo").empty()) {
      method = "modelopt";
    } else {
      return {};
    }
  }

  if (starts_with(method, "bitsandbytes")) {
    info.method = "bitsandbytes";
    if (true_member(q, "load_in_4bit") || contains(method, "4bit")) {
      info.bits = 4;
      std::string type = lower(string_member(q, "bnb_4bit_quant_type"));
      info.scheme = type.empty() ? "fp4" : type;  // fp4 is bitsandbytes' default 4-bit type
    } else {
      info.bits = 8;
      info.scheme = "int8";
    }
    return info;
  }
  info.method = method;
  if (method == "gptq" || method == "awq") {
    info.bits = bits_field(q);
    if (!info.bits) info.bits = 4;  // the default of both tools
    info.scheme = weight_only_scheme(info.bits);
  } else if (method == "fp8") {
    info.bits = 8;
    std::string fmt = lower(string_member(q, "fmt"));
    info.scheme = fmt.empty() ? "fp8" : fmt;
  } else if (method == "fbgemm_fp8") {
    info.bits = 8;
    info.scheme = "fp8";
  } else if (method == "compressed-tensors") {
    compressed_tensors_scheme(q, info);
  } else if (method == "mxfp4") {
    info.bits = 4;
    info.scheme = "mxfp4";
  } else if (method == "modelopt") {
    quant_algo_scheme(lower(string_member(q, "quant_algo")), info);
  } else if (method == "eetq") {
    info.bits = 8;
    info.scheme = "w8a16";
  } else if (method == "bitnet") {
    info.scheme = "ternary";
  } else if (method == "quanto") {
    std::string weights = lower(string_member(q, "weights"));
    info.scheme = weights;
    if (weights == "int4") info.bits = 4;
    if (weights == "int8" || weights == "float8") info.bits = 8;
  } else {
    info.bits = bits_field(q);
  }
  return info;
}

}  // namespace

QuantizationInfo detect_quantization(const json& config) {
  if (const json* pretrained = object_member(config, "pretrained_config")) {
    if (const json* q = object_member(*pretrained, "quantization")) {
      std::string algo = lower(string_member(*q, "quant_algo"));
      if (!algo.empty()) {
        QuantizationInfo info;
        info.method = algo;
        info.source = "config.json pretrained_config.quantization";
        quant_algo_scheme(algo, info);
        return info;
      }
    }
  }
  std::vector<const json*> scopes{&config};
  if (const json* text = object_member(config, "text_config")) scopes.push_back(text);
  for (const json* scope : scopes) {
    for (const char* key : {"quantization_config", "compression_config"}) {
      if (const json* q = object_member(*scope, key)) {
        std::string where = std::string("config.json ") + (scope == &config ? "" : "text_config.") + key;
        QuantizationInfo info = from_quantization_config(*q, where);
        if (info.quantized()) return info;
      }
    }
  }
  // ChatGLM's own int4/int8 checkpoints (e.g. chatglm2-6b-int4) declare only quantization_bit.
  if (int bits = small_bits(config, "quantization_bit")) {
    return {"int" + std::to_string(bits), weight_only_scheme(bits), bits, "config.json quantization_bit"};
  }
  return {};
}

QuantizationInfo detect_quantization_sidecar(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "quantize_config.json", ec)) {  // AutoGPTQ
    json q = load_config_json(dir / "quantize_config.json");
    QuantizationInfo info;
    info.method = lower(string_member(q, "quant_method"));
    if (info.method.empty()) info.method = "gptq";
    info.bits = bits_field(q);
    info.scheme = weight_only_scheme(info.bits);
    info.source = "quantize_config.json";
    return info;
  }
  if (fs::is_regular_file(dir / "quant_config.json", ec)) {  // AutoAWQ
    json q = load_config_json(dir / "quant_config.json");
    if (member(q, "w_bit") || member(q, "quant_method")) {
      QuantizationInfo info;
      info.method = lower(string_member(q, "quant_method"));
      if (info.method.empty()) info.method = "awq";
      info.bits = bits_field(q);
      info.scheme = weight_only_scheme(info.bits);
      info.source = "quant_config.json";
      return info;
    }
  }
  if (fs::is_regular_file(dir / "hf_quant_config.json", ec)) {  // NVIDIA ModelOpt
    json q = load_config_json(dir / "hf_quant_config.json");
    const json* inner = object_member(q, "quantization");
    std::string algo = lower(string_member(inner ? *inner : q, "quant_algo"));
    if (!algo.empty()) {
      QuantizationInfo info;
      info.method = "modelopt";
      info.source = "hf_quant_config.json";
      quant_algo_scheme(algo, info);
      return info;
    }
  }
  return {};
}

QuantizationInfo quantization_from_dtypes(const std::map<std::string, uint64_t>& dtype_parameters) {
  const std::string* top = nullptr;
  uint64_t most = 0;
  for (const auto& [dtype, params] : dtype_parameters) {
    if (params > most) {
      most = params;
      top = &dtype;
    }
  }
  if (!top) return {};
  const std::string source = "safetensors dtypes";
  if (*top == "F8_E4M3" || *top == "F8_E5M2") return {"fp8", lower(top->substr(3)), 8, source};
  if (*top == "I8") return {"int8", "int8", 8, source};
  if (*top == "F4") return {"fp4", "fp4", 4, source};
  return {};
}

std::string quantization_crd_value(const QuantizationInfo& q) {
  if (!q.quantized()) return "";
  std::string method = lower(q.method);
  std::string scheme = lower(q.scheme);
  if (method == "fbgemm_fp8") return "fbgemm_fp8";
  if (method == "bitsandbytes") return q.bits == 4 ? "int4" : "";
  if (contains(method, "fp4") || contains(scheme, "fp4")) return "";
  if (contains(method, "fp8") || contains(scheme, "fp8") || scheme == "e4m3" || scheme == "e5m2" ||
      starts_with(scheme, "float8")) {
    return "fp8";
  }
  if (q.bits == 4 || contains(method, "int4") || contains(scheme, "int4") || starts_with(scheme, "w4a")) return "int4";
  return "";
}

}  // namespace modelagent
