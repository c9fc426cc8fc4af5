#include <gtest/gtest.h>

#include "modelagent/errors.hpp"
#include "modelagent/model_metadata.hpp"
#include "test_model_support.hpp"

using namespace modelagent;
using nlohmann::json;
using model_test::TempDir;
using model_test::write_file;
using model_test::write_safetensors;
namespace fs = std::filesystem;

namespace {

std::string gguf_header(uint32_t version) {
  std::string h = "GGUF";
  for (int i = 0; i < 4; ++i) h += static_cast<char>((version >> (8 * i)) & 0xff);
  return h + std::string(16, '\0');  // tensor and key/value counts
}

std::vector<std::string> names(const std::vector<fs::path>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.filename().string());
  return out;
}

}  // namespace

TEST(WeightFormat, NoWeights) {
  TempDir d;
  write_file(d / "config.json", "{}");
  WeightFiles w = detect_weight_files(d.path(), json::object());
  EXPECT_EQ(w.format.name, "");
  EXPECT_TRUE(w.files.empty());
  EXPECT_EQ(w.total_bytes, 0u);
}

TEST(WeightFormat, SafetensorsBeatsPytorchAndOnlyItsFilesCount) {
  TempDir d;
  uint64_t size = write_safetensors(d / "model.safetensors", {{"w", "F32", {4, 4}}});
  write_file(d / "pytorch_model.bin", std::string(1000, 'x'));
  WeightFiles w = detect_weight_files(d.path(), json::object());
  EXPECT_EQ(w.format.name, "safetensors");
  EXPECT_EQ(w.format.version, "1.0.0");
  EXPECT_EQ(names(w.files), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(w.total_bytes, size);
}

TEST(WeightFormat, IndexedShardsOnly) {
  TempDir d;
  uint64_t a = write_safetensors(d / "model-00001-of-00002.safetensors", {{"a", "BF16", {8}}});
  uint64_t b = write_safetensors(d / "model-00002-of-00002.safetensors", {{"b", "BF16", {8}}});
  write_safetensors(d / "consolidated.safetensors", {{"a", "BF16", {8}}, {"b", "BF16", {8}}});
  write_file(d / "model.safetensors.index.json",
             R"({"metadata": {"total_size": 32}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                 "b": "model-00002-of-00002.safetensors"}})");
  WeightFiles w = detect_weight_files(d.path(), json::object());
  EXPECT_EQ(names(w.files),
            (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(w.total_bytes, a + b);
}

TEST(WeightFormat, SymlinkedWeightsCountTheirTargets) {
  TempDir d;
  uint64_t size = write_safetensors(d / "blobs/0123abcd", {{"w", "F16", {64, 64}}});
  fs::create_symlink(d / "blobs/0123abcd", d / "model.safetensors");
  WeightFiles w = detect_weight_files(d.path(), json::object());
  EXPECT_EQ(w.format.name, "safetensors");
  EXPECT_EQ(w.total_bytes, size);
}

TEST(WeightFormat, PytorchWithoutTrainerState) {
  TempDir d;
  write_file(d / "pytorch_model-00001-of-00002.bin", std::string(100, 'a'));
  write_file(d / "pytorch_model-00002-of-00002.bin", std::string(50, 'b'));
  write_file(d / "training_args.bin", std::string(7, 'c'));
  write_file(d / "optimizer.pt", std::string(9, 'd'));
  write_file(d / "rng_state_0.pth", std::string(3, 'e'));
  WeightFiles w = detect_weight_files(d.path(), json::object());
  EXPECT_EQ(w.format.name, "pytorch");
  EXPECT_FALSE(w.format.version.has_value());
  EXPECT_EQ(w.files.size(), 2u);
  EXPECT_EQ(w.total_bytes, 150u);
}

TEST(WeightFormat, GgufVersionFromHeader) {
  TempDir d;
  write_file(d / "model-Q4_K_M.gguf", gguf_header(3) + std::string(100, '\0'));
  write_file(d / "model-Q8_0.gguf", gguf_header(3));
  WeightFiles w = detect_weight_files(d.path(), json::object());
  EXPECT_EQ(w.format.name, "gguf");
  EXPECT_EQ(w.format.version, "3");
  EXPECT_EQ(w.total_bytes, 24u + 100u + 24u);
  EXPECT_EQ(read_gguf_version(d / "model-Q8_0.gguf"), 3u);
  write_file(d / "v2.gguf", gguf_header(2));
  EXPECT_EQ(read_gguf_version(d / "v2.gguf"), 2u);
}

TEST(WeightFormat, GgufErrorsNameTheFile) {
  TempDir d;
  write_file(d / "bad.gguf", "GGML" + std::string(20, '\0'));
  write_file(d / "short.gguf", "GGU");
  write_file(d / "zero.gguf", gguf_header(0));
  auto message = [](const fs::path& f) {
    try {
      read_gguf_version(f);
    } catch (const ModelConfigError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  EXPECT_EQ(message(d / "bad.gguf"), (d / "bad.gguf").string() + " is not a GGUF file (the magic bytes are not \"GGUF\")");
  EXPECT_EQ(message(d / "short.gguf"), (d / "short.gguf").string() + " is too short for a GGUF header (3 bytes)");
  EXPECT_NE(message(d / "zero.gguf").find("GGUF version 0"), std::string::npos);
  EXPECT_THROW(detect_weight_files(d.path(), json::object()), ModelConfigError);
}

TEST(WeightFormat, TensorRtLlmEngines) {
  TempDir d;
  write_file(d / "rank0.engine", std::string(300, 'e'));
  write_file(d / "rank1.engine", std::string(200, 'e'));
  json config = {{"version", "0.12.0"}, {"pretrained_config", {{"architecture", "LlamaForCausalLM"}}}};
  WeightFiles w = detect_weight_files(d.path(), config);
  EXPECT_EQ(w.format.name, "tensorrtllm");
  EXPECT_EQ(w.format.version, "0.12.0");
  EXPECT_EQ(w.total_bytes, 500u);
  // Engine files alone are enough to recognise the format.
  EXPECT_EQ(detect_weight_files(d.path(), json::object()).format.name, "tensorrtllm");
}

TEST(WeightFormat, OnnxWithExternalDataInSubfolder) {
  TempDir d;
  write_file(d / "onnx/model.onnx", std::string(10, 'o'));
  write_file(d / "onnx/model.onnx_data", std::string(90, 'd'));
  WeightFiles w = detect_weight_files(d.path(), json::object());
  EXPECT_EQ(w.format.name, "onnx");
  EXPECT_EQ(w.total_bytes, 100u);
  EXPECT_EQ(w.files.size(), 2u);
}
