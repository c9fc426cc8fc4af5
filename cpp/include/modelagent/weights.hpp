#pragma once
// Logical parameter count of a model from its safetensors headers, across shards and through the
// packed storage of low-bit quantized checkpoints.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace modelagent {

// From config.json "quantization_config": quant_method (gptq, awq, compressed-tensors, bitsandbytes,
// mxfp4, ...) and bits (0 = not given).
struct QuantizationHint {
  std::string method;
  int bits = 0;
};

struct WeightsSummary {
  std::vector<std::filesystem::path> files;
  uint64_t parameter_count = 0;  // logical: every tensor name once, packed low-bit storage unpacked
  uint64_t stored_bytes = 0;     // sum of tensor data bytes (each tensor name once)
  std::map<std::string, uint64_t> dtype_parameters;  // dtype -> logical params stored in it
  bool packed_low_bit = false;   // any packed tensor was unpacked
  // Quantization auxiliaries left out of the count, as "<suffix> x<count>" (e.g. "scales x224").
  std::vector<std::string> quantization_tensors_skipped;
};

// The safetensors files of the model whose config.json is in dir: shards named by
// model.safetensors.index.json "weight_map" (unique, sorted; a missing shard -> SafetensorsError naming
// it), else every *.safetensors directly in dir (sorted). Empty when none.
std::vector<std::filesystem::path> find_safetensors_files(const std::filesystem::path& dir);

// Reads every file's header (bounded reads only) and counts logical parameters.
WeightsSummary summarize_safetensors(const std::vector<std::filesystem::path>& files,
                                     const QuantizationHint& hint);

}  // namespace modelagent
