#pragma once
// Helpers for the model metadata tests: fixture paths, file writers and a minimal safetensors writer.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/temp_dir.hpp"

namespace model_test {

namespace fs = std::filesystem;

inline fs::path fixtures_dir() { return fs::path(MODELAGENT_FIXTURES_DIR) / "model-configs"; }

using testsupport::TempDir;

inline void write_file(const fs::path& file, const std::string& content) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

inline void write_json(const fs::path& file, const nlohmann::json& value) { write_file(file, value.dump(1)); }

struct Tensor {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
};

inline uint64_t dtype_bytes_for(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  return 1;  // I8, U8, BOOL, F8_*
}

// Writes a valid safetensors file whose tensor data is all zeros; returns its size in bytes.
inline uint64_t write_safetensors(const fs::path& file, const std::vector<Tensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    uint64_t elements = 1;
    for (uint64_t d : t.shape) elements *= d;
    uint64_t bytes = elements * dtype_bytes_for(t.dtype);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  while (json.size() % 8 != 0) json += ' ';
  std::string prefix(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  write_file(file, prefix + json);
  fs::resize_file(file, 8 + n + offset);
  return 8 + n + offset;
}

// A small llama-style decoder: embeddings, `layers` blocks, final norm, untied lm_head.
inline std::vector<Tensor> llama_tensors(uint64_t vocab, uint64_t hidden, uint64_t inter, int layers,
                                         const std::string& dtype) {
  std::vector<Tensor> t{{"model.embed_tokens.weight", dtype, {vocab, hidden}},
                        {"model.norm.weight", dtype, {hidden}},
                        {"lm_head.weight", dtype, {vocab, hidden}}};
  for (int i = 0; i < layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      t.push_back({p + "self_attn." + proj + ".weight", dtype, {hidden, hidden}});
    }
    t.push_back({p + "mlp.gate_proj.weight", dtype, {inter, hidden}});
    t.push_back({p + "mlp.up_proj.weight", dtype, {inter, hidden}});
    t.push_back({p + "mlp.down_proj.weight", dtype, {hidden, inter}});
    t.push_back({p + "input_layernorm.weight", dtype, {hidden}});
    t.push_back({p + "post_attention_layernorm.weight", dtype, {hidden}});
  }
  return t;
}

inline uint64_t llama_parameter_count(uint64_t vocab, uint64_t hidden, uint64_t inter, int layers) {
  return 2 * vocab * hidden + hidden + layers * (4 * hidden * hidden + 3 * inter * hidden + 2 * hidden);
}

}  // namespace model_test
