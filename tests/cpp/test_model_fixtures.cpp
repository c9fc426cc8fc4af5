// Every real config.json fixture (SOURCES.md says which model each one is) parses with the expected
// metadata. Each fixture is copied into a fresh directory as config.json and inspected there.

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "modelagent/model_metadata.hpp"
#include "modelagent/parameter_estimate.hpp"
#include "test_model_support.hpp"

using namespace modelagent;
using model_test::fixtures_dir;
using model_test::TempDir;
namespace fs = std::filesystem;

namespace {

struct Expected {
  const char* file;
  const char* model_type;
  const char* architecture;
  uint64_t context_length;
  const char* capability;
  const char* quantization;         // CRD value
  const char* quantization_method;  // detailed method ("" = not quantized)
  const char* torch_dtype;
  const char* transformers_version;
  bool has_vision;
};

// Values read from the fixture files; notes say why where the answer is not the obvious field.
const Expected kFixtures[] = {
    {"baichuan2_7b.json", "baichuan", "BaichuanForCausalLM", 4096, "CHAT", "", "", "bfloat16", "4.29.2", false},
    {"bge_large.json", "bert", "BertModel", 512, "TEXT_EMBEDDINGS", "", "", "float32", "4.30.0", false},
    // ChatGLMModel carries the LM head; no max_position_embeddings, so seq_length.
    {"chatglm3_6b.json", "chatglm", "ChatGLMModel", 8192, "CHAT", "", "", "float16", "4.30.2", false},
    // An image encoder: no text context length at all.
    {"clip_vision_model.json", "clip_vision_model", "CLIPVisionModelWithProjection", 0, "VISION", "", "", "float16",
     "4.36.0", true},
    {"command_r_35b.json", "cohere", "CohereForCausalLM", 131072, "CHAT", "", "", "bfloat16", "", false},
    {"dbrx_132b.json", "dbrx", "DbrxForCausalLM", 32768, "CHAT", "", "", "bfloat16", "", false},
    // The fixture lacks the FP8 quantization_config of the hub repo (SOURCES.md), so: not quantized.
    {"deepseek_v3.json", "deepseek_v3", "DeepseekV3ForCausalLM", 163840, "CHAT", "", "", "bfloat16", "4.46.3", false},
    // No architectures: the class OME assumes for the type; context from language_config.
    {"deepseek_vl2_tiny.json", "deepseek_vl_v2", "DeepseekVLV2ForCausalLM", 4096, "VISION", "", "", "bfloat16",
     "4.38.2", true},
    // E5-Mistral: the MistralModel base class is an embedder.
    {"e5_mistral_7b.json", "mistral", "MistralModel", 32768, "TEXT_EMBEDDINGS", "", "", "float16", "4.34.0", false},
    {"exaone_7.8b.json", "exaone", "ExaoneForCausalLM", 32768, "CHAT", "", "", "float32", "4.43.0", false},
    {"gemma_2_2b.json", "gemma2", "Gemma2ForCausalLM", 8192, "CHAT", "", "", "float32", "4.42.4", false},
    {"gemma_2_2b_it.json", "gemma2", "Gemma2ForCausalLM", 8192, "CHAT", "", "", "bfloat16", "4.42.4", false},
    {"gemma_2_9b.json", "gemma2", "Gemma2ForCausalLM", 8192, "CHAT", "", "", "float32", "4.42.0.dev0", false},
    {"glm4_9b.json", "chatglm", "ChatGLMModel", 8192, "CHAT", "", "", "bfloat16", "4.44.0", false},
    // GTE-Qwen2: a Qwen2ForCausalLM with is_causal=false is an embedder.
    {"gte_qwen2_7b.json", "qwen2", "Qwen2ForCausalLM", 131072, "TEXT_EMBEDDINGS", "", "", "float32", "4.41.2", false},
    {"internlm2_7b.json", "internlm2", "InternLM2ForCausalLM", 32768, "CHAT", "", "", "bfloat16", "4.41.0", false},
    // A reward model scores text; it cannot generate.
    {"internlm2_reward.json", "internlm2", "InternLM2ForRewardModel", 32768, "TEXT_RERANK", "", "", "float16",
     "4.41.2", false},
    {"janus_1.3b.json", "multi_modality", "JanusMultiModalityCausalLM", 16384, "VISION", "", "", "bfloat16", "4.38.2",
     true},
    // Block-wise FP8 (quant_method fp8, fmt e4m3).
    {"kimi_k2_instruct.json", "kimi_k2", "DeepseekV3ForCausalLM", 131072, "CHAT", "fp8", "fp8", "bfloat16", "4.48.3",
     false},
    {"llama3.json", "llama", "LlamaForCausalLM", 8192, "CHAT", "", "", "bfloat16", "4.40.0.dev0", false},
    {"llama3_1.json", "llama", "LlamaForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.42.3", false},
    {"llama3_1_405b.json", "llama", "LlamaForCausalLM", 131072, "CHAT", "fbgemm_fp8", "fbgemm_fp8", "bfloat16",
     "4.43.0.dev0", false},
    {"llama3_2_11b_vision.json", "mllama", "MllamaForConditionalGeneration", 131072, "VISION", "", "", "bfloat16",
     "4.45.0.dev0", true},
    {"llama3_2_1b.json", "llama", "LlamaForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.45.0.dev0", false},
    {"llama3_2_3b.json", "llama", "LlamaForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.45.0.dev0", false},
    {"llama3_2_90b_vision.json", "mllama", "MllamaForConditionalGeneration", 131072, "VISION", "", "", "bfloat16",
     "4.45.0.dev0", true},
    // compressed-tensors with float 8-bit weights: scheme fp8.
    {"llama4.json", "llama4", "Llama4ForConditionalGeneration", 1048576, "VISION", "fp8", "compressed-tensors",
     "bfloat16", "4.51.0.dev0", true},
    {"llama4_scout_17b_16e.json", "llama4", "Llama4ForConditionalGeneration", 10485760, "VISION", "", "", "bfloat16",
     "4.51.0.dev0", true},
    {"llava_1.5_7b_hf.json", "llava", "LlavaForConditionalGeneration", 4096, "VISION", "", "", "float16",
     "4.36.0.dev0", true},
    // The original LLaVA format: the vision tower is named by mm_vision_tower.
    {"llava_v1.5_7b.json", "llava", "LlavaLlamaForCausalLM", 4096, "VISION", "", "", "float16", "4.31.0", true},
    {"minicpm3_4b.json", "minicpm3", "MiniCPM3ForCausalLM", 32768, "CHAT", "", "", "bfloat16", "4.41.0", false},
    // Despite its name this is e5-mistral-7b-instruct (SOURCES.md).
    {"mistral.json", "mistral", "MistralModel", 32768, "TEXT_EMBEDDINGS", "", "", "float16", "4.34.0", false},
    {"mistral_7b_instruct.json", "mistral", "MistralForCausalLM", 32768, "CHAT", "", "", "bfloat16", "4.36.2", false},
    {"mixtral.json", "mixtral", "MixtralForCausalLM", 32768, "CHAT", "", "", "bfloat16", "4.36.0.dev0", false},
    // Vision through img_processor.
    {"phi3_v.json", "phi3_v", "Phi3VForCausalLM", 131072, "VISION", "", "", "bfloat16", "4.38.1", true},
    {"qwen2.5_0.5b.json", "qwen2", "Qwen2ForCausalLM", 32768, "CHAT", "", "", "bfloat16", "4.40.1", false},
    {"qwen2.5_1.5b.json", "qwen2", "Qwen2ForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.40.1", false},
    {"qwen2.5_14b.json", "qwen2", "Qwen2ForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.43.1", false},
    {"qwen2.5_32b.json", "qwen2", "Qwen2ForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.43.1", false},
    {"qwen2.5_3b.json", "qwen2", "Qwen2ForCausalLM", 32768, "CHAT", "", "", "bfloat16", "4.40.1", false},
    {"qwen2.5_72b.json", "qwen2", "Qwen2ForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.43.1", false},
    {"qwen2.5_7b.json", "qwen2", "Qwen2ForCausalLM", 131072, "CHAT", "", "", "bfloat16", "4.40.1", false},
    // A CodeQwen1.5 fine-tune (SOURCES.md); max_position_embeddings and seq_length agree on 64k.
    {"qwen2_7b.json", "qwen2", "Qwen2ForCausalLM", 65536, "CHAT", "", "", "bfloat16", "4.42.0.dev0", false},
    {"qwen2_vl_2b.json", "qwen2_vl", "Qwen2VLForConditionalGeneration", 32768, "VISION", "", "", "bfloat16", "4.41.2",
     true},
    {"qwen2_vl_7b.json", "qwen2_vl", "Qwen2VLForConditionalGeneration", 32768, "VISION", "", "", "bfloat16", "4.41.2",
     true},
    // A reward model built as a sequence classifier.
    {"skywork_reward_llama.json", "llama", "LlamaForSequenceClassification", 131072, "TEXT_RERANK", "", "",
     "bfloat16", "4.45.0.dev0", false},
    {"smollm_1.7b.json", "llama", "LlamaForCausalLM", 2048, "CHAT", "", "", "float32", "4.39.3", false},
    {"stablelm_3b.json", "stablelm", "StableLmForCausalLM", 4096, "CHAT", "", "", "bfloat16", "4.38.0", false},
    {"xverse_7b.json", "xverse", "XverseForCausalLM", 8192, "CHAT", "", "", "bfloat16", "4.30.0.dev0", false},
};

class Fixture : public ::testing::TestWithParam<Expected> {};

std::string fixture_name(const ::testing::TestParamInfo<Expected>& info) {
  std::string name = info.param.file;
  name = name.substr(0, name.size() - 5);
  for (char& c : name) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace

TEST_P(Fixture, ParsesWithExpectedMetadata) {
  const Expected& e = GetParam();
  TempDir dir;
  fs::copy_file(fixtures_dir() / e.file, dir / "config.json");

  ModelMetadata m = inspect_model(dir.path());
  EXPECT_EQ(m.config_path, dir / "config.json");
  EXPECT_EQ(m.model_type, e.model_type);
  EXPECT_EQ(m.architecture, e.architecture);
  EXPECT_EQ(m.context_length, e.context_length);
  EXPECT_EQ(m.capabilities, std::vector<std::string>{e.capability});
  EXPECT_EQ(m.has_vision, e.has_vision);
  EXPECT_EQ(m.quantization, e.quantization);
  EXPECT_EQ(m.quantization_detail.method, e.quantization_method);
  EXPECT_EQ(m.torch_dtype, e.torch_dtype);
  EXPECT_EQ(m.transformers_version, e.transformers_version);
  EXPECT_EQ(m.framework.name, "transformers");
  EXPECT_EQ(m.framework.version.value_or(""), e.transformers_version);

  // No weight files beside the config: no format, no size, and the count is the config estimate.
  EXPECT_EQ(m.format.name, "");
  EXPECT_EQ(m.model_size_bytes, 0u);
  EXPECT_TRUE(m.weight_files.empty());
  auto estimate = estimate_parameters(nlohmann::json::parse(std::ifstream(dir / "config.json")));
  EXPECT_EQ(m.parameter_count, estimate.value_or(0));
  EXPECT_EQ(m.parameter_count_source, estimate ? "estimate" : "");
  EXPECT_EQ(m.parameter_size, estimate ? format_parameter_size(*estimate) : "");

  nlohmann::json summary = decoded_summary(m);
  EXPECT_EQ(summary["model_type"], e.model_type);
  EXPECT_EQ(summary["architecture"], e.architecture);
  EXPECT_EQ(summary["context_length"], e.context_length);
  EXPECT_EQ(summary["has_vision"], e.has_vision);
  EXPECT_EQ(summary["torch_dtype"], e.torch_dtype);
  EXPECT_EQ(summary.size(), std::string(e.quantization_method).empty() ? 8u : 9u);
}

INSTANTIATE_TEST_SUITE_P(ModelConfigs, Fixture, ::testing::ValuesIn(kFixtures), fixture_name);

TEST(Fixtures, EveryFixtureFileHasAnExpectation) {
  std::set<std::string> expected;
  for (const Expected& e : kFixtures) expected.insert(e.file);
  std::set<std::string> present;
  for (const auto& entry : fs::directory_iterator(fixtures_dir())) {
    if (entry.path().extension() == ".json") present.insert(entry.path().filename().string());
  }
  EXPECT_EQ(present, expected);
}

TEST(Fixtures, QuantizationDetailOfQuantizedFixtures) {
  auto detail = [](const char* file) {
    return detect_quantization(nlohmann::json::parse(std::ifstream(fixtures_dir() / file)));
  };
  QuantizationInfo kimi = detail("kimi_k2_instruct.json");
  EXPECT_EQ(kimi.scheme, "e4m3");
  EXPECT_EQ(kimi.bits, 8);
  EXPECT_EQ(kimi.source, "config.json quantization_config");
  QuantizationInfo llama4 = detail("llama4.json");
  EXPECT_EQ(llama4.scheme, "fp8");
  EXPECT_EQ(llama4.bits, 8);
  QuantizationInfo fbgemm = detail("llama3_1_405b.json");
  EXPECT_EQ(fbgemm.scheme, "fp8");
  EXPECT_EQ(fbgemm.bits, 8);
}

// The real tiny-random-PhiModel: two byte-identical un-indexed shards holding the same 31 tensors.
TEST(Fixtures, TinyRandomPhiModelCountsEachTensorOnce) {
  fs::path dir = fixtures_dir() / "tiny-random-PhiModel";
  ModelMetadata m = inspect_model(dir);
  EXPECT_EQ(m.model_type, "phi");
  EXPECT_EQ(m.architecture, "PhiModel");
  EXPECT_EQ(m.capabilities, std::vector<std::string>{"TEXT_EMBEDDINGS"});  // a base class without LM head
  EXPECT_EQ(m.context_length, 512u);
  EXPECT_EQ(m.format.name, "safetensors");
  EXPECT_EQ(m.format.version, "1.0.0");
  EXPECT_EQ(m.parameter_count_source, "safetensors");
  // Counted by hand from the config (vocab 1024, hidden 32, 2 layers, intermediate 37, no LM head):
  // embeddings 32768; per layer q,k,v,dense 4*(32*32+32) = 4224, fc1 32*37+37 = 1221, fc2 37*32+32 = 1216,
  // input_layernorm 64 -> 6725; final_layernorm 64. Total 32768 + 2*6725 + 64 = 46282.
  EXPECT_EQ(m.parameter_count, 46282u);
  EXPECT_EQ(m.parameter_size, "46.28K");
  EXPECT_EQ(m.model_size_bytes, 2u * 188008u);  // both shard files are on disk
  EXPECT_EQ(m.weight_files.size(), 2u);
  EXPECT_EQ(m.torch_dtype, "float32");
  EXPECT_EQ(m.quantization, "");
}
