// inspect_model wiring: config facts + weight files + safetensors headers (or the estimate).

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "modelagent/errors.hpp"
#include "modelagent/model_metadata.hpp"
#include "modelagent/parameter_estimate.hpp"
#include "test_model_support.hpp"

using namespace modelagent;
using nlohmann::json;
using model_test::llama_parameter_count;
using model_test::llama_tensors;
using model_test::Tensor;
using model_test::TempDir;
using model_test::write_file;
using model_test::write_json;
using model_test::write_safetensors;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kVocab = 256, kHidden = 64, kInter = 128;

json tiny_llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", kHidden},
          {"intermediate_size", kInter},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 4},
          {"vocab_size", kVocab},
          {"max_position_embeddings", 2048},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.44.0"},
          {"eos_token_id", {1, 2}}};
}

std::set<std::string> keys(const json& object) {
  std::set<std::string> out;
  for (const auto& [k, v] : object.items()) out.insert(k);
  return out;
}

template <typename E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no error of the expected type>";
}

}  // namespace

TEST(InspectModel, ExactCountFromSafetensors) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  uint64_t size = write_safetensors(d / "model.safetensors", llama_tensors(kVocab, kHidden, kInter, 2, "BF16"));
  ModelMetadata m = inspect_model(d.path());
  uint64_t expected = llama_parameter_count(kVocab, kHidden, kInter, 2);
  EXPECT_EQ(m.parameter_count, expected);
  EXPECT_EQ(m.parameter_count_source, "safetensors");
  EXPECT_EQ(m.parameter_size, format_parameter_size(expected));
  EXPECT_EQ(m.format.name, "safetensors");
  EXPECT_EQ(m.format.version, "1.0.0");
  EXPECT_EQ(m.model_size_bytes, size);
  EXPECT_EQ(m.weight_files, std::vector<fs::path>{d / "model.safetensors"});
  EXPECT_EQ(m.model_dir, d.path());
  EXPECT_EQ(m.framework.name, "transformers");
  EXPECT_EQ(m.framework.version, "4.44.0");
  EXPECT_EQ(m.capabilities, std::vector<std::string>{"CHAT"});
  EXPECT_EQ(m.context_length, 2048u);
}

TEST(InspectModel, EstimateWithoutWeights) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  ModelMetadata m = inspect_model(d.path());
  auto estimate = estimate_parameters(tiny_llama_config());
  ASSERT_TRUE(estimate.has_value());
  EXPECT_EQ(m.parameter_count, *estimate);
  EXPECT_EQ(m.parameter_count_source, "estimate");
  EXPECT_EQ(m.format.name, "");
}

TEST(InspectModel, UnknownCountLeavesSizeEmpty) {
  TempDir d;
  write_json(d / "config.json", {{"model_type", "mystery"}});
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.parameter_count, 0u);
  EXPECT_EQ(m.parameter_size, "");
  EXPECT_EQ(m.parameter_count_source, "");
  EXPECT_EQ(decoded_summary(m)["parameter_count"], "");
}

TEST(InspectModel, ShardedSafetensorsWithIndex) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  auto tensors = llama_tensors(kVocab, kHidden, kInter, 2, "BF16");
  std::vector<Tensor> first(tensors.begin(), tensors.begin() + 8), second(tensors.begin() + 8, tensors.end());
  uint64_t a = write_safetensors(d / "model-00001-of-00002.safetensors", first);
  uint64_t b = write_safetensors(d / "model-00002-of-00002.safetensors", second);
  json weight_map = json::object();
  for (const auto& t : first) weight_map[t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : second) weight_map[t.name] = "model-00002-of-00002.safetensors";
  write_json(d / "model.safetensors.index.json", {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}});
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.parameter_count, llama_parameter_count(kVocab, kHidden, kInter, 2));
  EXPECT_EQ(m.model_size_bytes, a + b);
  EXPECT_EQ(m.weight_files.size(), 2u);
}

TEST(InspectModel, ConfigInSubfolderUsesWeightsBesideIt) {
  TempDir d;
  write_json(d / "model/config.json", tiny_llama_config());
  write_safetensors(d / "model/model.safetensors", llama_tensors(kVocab, kHidden, kInter, 2, "F32"));
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.config_path, d / "model/config.json");
  EXPECT_EQ(m.model_dir, d / "model");
  EXPECT_EQ(m.parameter_count_source, "safetensors");
}

TEST(InspectModel, ConfigFilePathDirectly) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  ModelMetadata m = inspect_model(d / "config.json");
  EXPECT_EQ(m.config_path, d / "config.json");
  EXPECT_EQ(m.architecture, "LlamaForCausalLM");
}

TEST(InspectModel, DtypeFromSafetensorsWhenConfigHasNone) {
  TempDir d;
  json config = tiny_llama_config();
  config.erase("torch_dtype");
  write_json(d / "config.json", config);
  write_safetensors(d / "model.safetensors", llama_tensors(kVocab, kHidden, kInter, 2, "F16"));
  EXPECT_EQ(inspect_model(d.path()).torch_dtype, "float16");
}

TEST(InspectModel, NewerTransformersDtypeKeyAndTorchPrefix) {
  TempDir d;
  json config = tiny_llama_config();
  config.erase("torch_dtype");
  config["dtype"] = "torch.bfloat16";
  write_json(d / "config.json", config);
  EXPECT_EQ(inspect_model(d.path()).torch_dtype, "bfloat16");
}

TEST(InspectModel, Fp8DetectedFromDtypesWhenConfigIsSilent) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  auto tensors = llama_tensors(kVocab, kHidden, kInter, 2, "F8_E4M3");
  for (auto& t : tensors) {
    if (t.shape.size() == 1 || t.name.find("embed") != std::string::npos) t.dtype = "BF16";
  }
  write_safetensors(d / "model.safetensors", tensors);
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.quantization, "fp8");
  EXPECT_EQ(m.quantization_detail.method, "fp8");
  EXPECT_EQ(m.quantization_detail.scheme, "e4m3");
  EXPECT_EQ(m.quantization_detail.source, "safetensors dtypes");
  EXPECT_EQ(m.torch_dtype, "bfloat16");  // the config's
  json summary = decoded_summary(m);
  EXPECT_EQ(summary["quantization"], (json{{"method", "fp8"}, {"scheme", "e4m3"}, {"bits", 8}}));
}

// GPTQ 8-bit: the config's bits reach the safetensors summary, so packed int32 storage unpacks by 32/8.
TEST(InspectModel, QuantizationHintReachesTheWeightSummary) {
  TempDir d;
  json config = tiny_llama_config();
  config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", 32}};
  write_json(d / "config.json", config);
  std::vector<Tensor> tensors{{"model.embed_tokens.weight", "F16", {kVocab, kHidden}},
                              {"model.norm.weight", "F16", {kHidden}},
                              {"lm_head.weight", "F16", {kVocab, kHidden}}};
  for (int i = 0; i < 2; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    auto linear = [&](const std::string& name, uint64_t in, uint64_t out) {
      tensors.push_back({p + name + ".qweight", "I32", {in * 8 / 32, out}});
      tensors.push_back({p + name + ".qzeros", "I32", {in / 32, out * 8 / 32}});
      tensors.push_back({p + name + ".scales", "F16", {in / 32, out}});
      tensors.push_back({p + name + ".g_idx", "I32", {in}});
    };
    for (const char* proj : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
      linear(proj, kHidden, kHidden);
    }
    linear("mlp.gate_proj", kHidden, kInter);
    linear("mlp.up_proj", kHidden, kInter);
    linear("mlp.down_proj", kInter, kHidden);
    tensors.push_back({p + "input_layernorm.weight", "F16", {kHidden}});
    tensors.push_back({p + "post_attention_layernorm.weight", "F16", {kHidden}});
  }
  write_safetensors(d / "model.safetensors", tensors);
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.parameter_count, llama_parameter_count(kVocab, kHidden, kInter, 2));
  EXPECT_EQ(m.quantization_detail.method, "gptq");
  EXPECT_EQ(m.quantization_detail.bits, 8);
  EXPECT_EQ(m.quantization, "");  // 8-bit GPTQ has no CRD value
}

TEST(InspectModel, SidecarQuantizationWhenConfigIsSilent) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  write_file(d / "quantize_config.json", R"({"bits": 4, "group_size": 128})");
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.quantization, "int4");
  EXPECT_EQ(m.quantization_detail.method, "gptq");
  EXPECT_EQ(m.quantization_detail.source, "quantize_config.json");
}

TEST(InspectModel, SentenceTransformersFolderIsAnEmbedder) {
  TempDir d;
  json config = tiny_llama_config();
  config["architectures"] = {"Qwen2ForCausalLM"};
  config["model_type"] = "qwen2";
  write_json(d / "config.json", config);
  EXPECT_EQ(inspect_model(d.path()).capabilities, std::vector<std::string>{"CHAT"});
  write_file(d / "modules.json", R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])");
  EXPECT_EQ(inspect_model(d.path()).capabilities, std::vector<std::string>{"TEXT_EMBEDDINGS"});
}

TEST(InspectModel, DecodedSummaryHasExactlyTheEightKeys) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  uint64_t size = write_safetensors(d / "model.safetensors", llama_tensors(kVocab, kHidden, kInter, 2, "BF16"));
  json s = decoded_summary(inspect_model(d.path()));
  EXPECT_EQ(keys(s), (std::set<std::string>{"model_type", "architecture", "context_length", "parameter_count",
                                            "has_vision", "transformers_version", "torch_dtype", "model_size_bytes"}));
  EXPECT_EQ(s["model_type"], "llama");
  EXPECT_EQ(s["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(s["context_length"], 2048);
  EXPECT_EQ(s["parameter_count"], format_parameter_size(llama_parameter_count(kVocab, kHidden, kInter, 2)));
  EXPECT_EQ(s["has_vision"], false);
  EXPECT_EQ(s["transformers_version"], "4.44.0");
  EXPECT_EQ(s["torch_dtype"], "bfloat16");
  EXPECT_EQ(s["model_size_bytes"], size);
}

TEST(InspectModel, QuantizedSummaryAddsTheDetail) {
  TempDir d;
  json config = tiny_llama_config();
  config["quantization_config"] = {{"quant_method", "awq"}, {"w_bit", 4}};
  write_json(d / "config.json", config);
  json s = decoded_summary(inspect_model(d.path()));
  EXPECT_EQ(s.size(), 9u);
  EXPECT_EQ(s["quantization"], (json{{"method", "awq"}, {"scheme", "w4a16"}, {"bits", 4}}));
}

TEST(InspectModel, DiffusersPipeline) {
  TempDir d;
  write_json(d / "model_index.json", {{"_class_name", "StableDiffusionPipeline"},
                                      {"_diffusers_version", "0.27.0"},
                                      {"unet", {"diffusers", "UNet2DConditionModel"}},
                                      {"vae", {"diffusers", "AutoencoderKL"}},
                                      {"text_encoder", {"transformers", "CLIPTextModel"}},
                                      {"scheduler", {"diffusers", "PNDMScheduler"}},
                                      {"tokenizer", {"transformers", "CLIPTokenizer"}},
                                      {"safety_checker", {nullptr, nullptr}},
                                      {"..", {"diffusers", "Escape"}}});
  uint64_t bytes = 0;
  // The same unet tensors in two precisions: on disk twice, counted once.
  bytes += write_safetensors(d / "unet/diffusion_pytorch_model.safetensors",
                             {{"conv_in.weight", "F32", {32, 4, 3, 3}}, {"conv_in.bias", "F32", {32}}});
  bytes += write_safetensors(d / "unet/diffusion_pytorch_model.fp16.safetensors",
                             {{"conv_in.weight", "F16", {32, 4, 3, 3}}, {"conv_in.bias", "F16", {32}}});
  // The vae has a tensor of the same name as the unet's; both count.
  bytes += write_safetensors(d / "vae/diffusion_pytorch_model.safetensors",
                             {{"conv_in.weight", "F32", {16, 3, 3, 3}}, {"conv_in.bias", "F32", {16}}});
  bytes += write_safetensors(d / "text_encoder/model.safetensors",
                             {{"text_model.embeddings.token_embedding.weight", "F32", {1000, 32}}});
  write_json(d / "text_encoder/config.json", {{"model_type", "clip_text_model"}});
  write_file(d / "scheduler/scheduler_config.json", "{}");
  write_safetensors(d / "escape.safetensors", {{"x", "F32", {1000}}});  // would be reached through ".."

  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.config_path, d / "model_index.json");
  EXPECT_EQ(m.model_type, "diffusers");
  EXPECT_EQ(m.architecture, "StableDiffusionPipeline");
  EXPECT_EQ(m.framework.name, "diffusers");
  EXPECT_EQ(m.framework.version, "0.27.0");
  EXPECT_EQ(m.format.name, "safetensors");
  EXPECT_EQ(m.capabilities, std::vector<std::string>{"TEXT_TO_IMAGE"});
  EXPECT_EQ(m.parameter_count, (32u * 4 * 9 + 32) + (16u * 27 + 16) + 32000u);
  EXPECT_EQ(m.parameter_count_source, "safetensors");
  EXPECT_EQ(m.model_size_bytes, bytes);
  EXPECT_EQ(m.weight_files.size(), 4u);
  EXPECT_EQ(m.torch_dtype, "float32");
  EXPECT_EQ(m.context_length, 0u);
}

TEST(InspectModel, DiffusersWithAPytorchOnlyComponentHasNoCount) {
  TempDir d;
  write_json(d / "model_index.json", {{"_class_name", "StableDiffusionPipeline"},
                                      {"unet", {"diffusers", "UNet2DConditionModel"}},
                                      {"vae", {"diffusers", "AutoencoderKL"}}});
  write_safetensors(d / "unet/diffusion_pytorch_model.safetensors", {{"w", "F16", {8, 8}}});
  write_file(d / "vae/diffusion_pytorch_model.bin", std::string(64, 'v'));
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.parameter_count, 0u);
  EXPECT_EQ(m.parameter_size, "");
  EXPECT_EQ(m.format.name, "safetensors");
  EXPECT_EQ(m.weight_files.size(), 2u);
}

TEST(InspectModel, TensorRtLlmEngine) {
  TempDir d;
  json pretrained = {{"architecture", "LlamaForCausalLM"},
                     {"dtype", "float16"},
                     {"vocab_size", 32000},
                     {"hidden_size", 4096},
                     {"num_hidden_layers", 32},
                     {"num_attention_heads", 32},
                     {"num_key_value_heads", 32},
                     {"intermediate_size", 11008},
                     {"max_position_embeddings", 4096},
                     {"quantization", {{"quant_algo", "FP8"}, {"kv_cache_quant_algo", nullptr}}}};
  write_json(d / "config.json", {{"version", "0.12.0"},
                                 {"pretrained_config", pretrained},
                                 {"build_config", {{"max_seq_len", 2048}, {"max_batch_size", 8}}}});
  write_file(d / "rank0.engine", std::string(1000, 'e'));
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.model_type, "");
  EXPECT_EQ(m.architecture, "LlamaForCausalLM");
  EXPECT_EQ(m.framework.name, "tensorrtllm");
  EXPECT_EQ(m.framework.version, "0.12.0");
  EXPECT_EQ(m.format.name, "tensorrtllm");
  EXPECT_EQ(m.format.version, "0.12.0");
  EXPECT_EQ(m.torch_dtype, "float16");
  EXPECT_EQ(m.context_length, 2048u);
  EXPECT_EQ(m.quantization, "fp8");
  EXPECT_EQ(m.model_size_bytes, 1000u);
  EXPECT_EQ(m.capabilities, std::vector<std::string>{"CHAT"});
  json input = pretrained;
  input["architectures"] = {"LlamaForCausalLM"};
  EXPECT_EQ(m.parameter_count, estimate_parameters(input).value_or(0));
}

TEST(InspectModel, NewFamiliesThroughTheGenericPath) {
  struct Case {
    json config;
    const char* type;
    uint64_t context;
    const char* capability;
    const char* quantization_method;
  };
  const Case cases[] = {
      {{{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"hidden_size", 4096},
        {"intermediate_size", 12288}, {"num_hidden_layers", 36}, {"num_attention_heads", 32},
        {"num_key_value_heads", 8}, {"head_dim", 128}, {"max_position_embeddings", 40960}, {"vocab_size", 151936},
        {"tie_word_embeddings", false}, {"rope_scaling", nullptr}, {"eos_token_id", 151645}},
       "qwen3", 40960, "CHAT", ""},
      {{{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}, {"hidden_size", 2048},
        {"moe_intermediate_size", 768}, {"num_experts", 128}, {"num_experts_per_tok", 8},
        {"num_hidden_layers", 48}, {"num_attention_heads", 32}, {"num_key_value_heads", 4},
        {"max_position_embeddings", 40960}, {"vocab_size", 151936}},
       "qwen3_moe", 40960, "CHAT", ""},
      {{{"architectures", {"Gemma3ForConditionalGeneration"}}, {"model_type", "gemma3"},
        {"text_config", {{"model_type", "gemma3_text"}, {"hidden_size", 2560}, {"num_hidden_layers", 34},
                         {"max_position_embeddings", 131072}}},
        {"vision_config", {{"model_type", "siglip_vision_model"}, {"hidden_size", 1152}}},
        {"eos_token_id", {1, 106}}},
       "gemma3", 131072, "VISION", ""},
      {{{"architectures", {"Phi3ForCausalLM"}}, {"model_type", "phi3"}, {"hidden_size", 3072},
        {"num_hidden_layers", 32}, {"max_position_embeddings", 4096}, {"vocab_size", 32064},
        {"eos_token_id", 32000}},
       "phi3", 4096, "CHAT", ""},
      {{{"architectures", {"DeepseekV2ForCausalLM"}}, {"model_type", "deepseek_v2"}, {"hidden_size", 2048},
        {"n_routed_experts", 64}, {"n_shared_experts", 2}, {"moe_intermediate_size", 1408},
        {"kv_lora_rank", 512}, {"q_lora_rank", nullptr}, {"first_k_dense_replace", 1},
        {"num_hidden_layers", 27}, {"max_position_embeddings", 163840}, {"vocab_size", 102400}},
       "deepseek_v2", 163840, "CHAT", ""},
      {{{"architectures", {"GraniteForCausalLM"}}, {"model_type", "granite"}, {"hidden_size", 4096},
        {"num_hidden_layers", 40}, {"max_position_embeddings", 4096}, {"vocab_size", 49155},
        {"tie_word_embeddings", true}},
       "granite", 4096, "CHAT", ""},
      {{{"architectures", {"Olmo2ForCausalLM"}}, {"model_type", "olmo2"}, {"hidden_size", 4096},
        {"num_hidden_layers", 32}, {"max_position_embeddings", 4096}, {"vocab_size", 100352}},
       "olmo2", 4096, "CHAT", ""},
      {{{"architectures", {"GptOssForCausalLM"}}, {"model_type", "gpt_oss"}, {"hidden_size", 2880},
        {"num_local_experts", 32}, {"num_experts_per_tok", 4}, {"num_hidden_layers", 24},
        {"initial_context_length", 4096}, {"max_position_embeddings", 131072}, {"vocab_size", 201088},
        {"quantization_config", {{"quant_method", "mxfp4"}, {"modules_to_not_convert", {"model.layers.*.self_attn"}}}}},
       "gpt_oss", 131072, "CHAT", "mxfp4"},
      {{{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"n_embd", 768}, {"n_layer", 12},
        {"n_head", 12}, {"n_positions", 1024}, {"vocab_size", 50257}},
       "gpt2", 1024, "CHAT", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    TempDir d;
    write_json(d / "config.json", c.config);
    ModelMetadata m = inspect_model(d.path());
    EXPECT_EQ(m.model_type, c.type);
    EXPECT_EQ(m.architecture, c.config["architectures"][0]);
    EXPECT_EQ(m.context_length, c.context);
    EXPECT_EQ(m.capabilities, std::vector<std::string>{c.capability});
    EXPECT_EQ(m.quantization_detail.method, c.quantization_method);
    EXPECT_EQ(m.quantization, "");
    EXPECT_EQ(m.parameter_count, estimate_parameters(c.config).value_or(0));
  }
}

TEST(InspectModel, FieldsOfTheWrongTypeDegradeToUnknown) {
  TempDir d;
  write_json(d / "config.json", {{"model_type", 42},
                                 {"architectures", {{"a", 1}}},
                                 {"torch_dtype", 16},
                                 {"transformers_version", nullptr},
                                 {"max_position_embeddings", "long"},
                                 {"quantization_config", json::array()},
                                 {"vision_config", 3},
                                 {"text_config", {1, 2}},
                                 {"eos_token_id", {1, {2}}},
                                 {"is_causal", "false"},
                                 {"hidden_size", -5},
                                 {"num_hidden_layers", 1e300}});
  ModelMetadata m = inspect_model(d.path());
  EXPECT_EQ(m.model_type, "");
  EXPECT_EQ(m.architecture, "");
  EXPECT_EQ(m.torch_dtype, "");
  EXPECT_EQ(m.context_length, 0u);
  EXPECT_FALSE(m.has_vision);
  EXPECT_EQ(m.capabilities, std::vector<std::string>{"CHAT"});
  EXPECT_EQ(m.quantization, "");
  EXPECT_EQ(decoded_summary(m).size(), 8u);
}

TEST(InspectModel, MalformedConfigIsAModelConfigError) {
  TempDir d;
  write_file(d / "config.json", "{\"model_type\": }");
  std::string err = error_of<ModelConfigError>([&] { inspect_model(d.path()); });
  EXPECT_NE(err.find("malformed JSON in " + (d / "config.json").string() + " at line 1, column 16"), std::string::npos)
      << err;
}

TEST(InspectModel, MissingConfig) {
  TempDir d;
  EXPECT_EQ(error_of<ModelConfigError>([&] { inspect_model(d.path()); }),
            "config.json not found in " + d.path().string());
}

TEST(InspectModel, HostileSafetensorsHeaderNamesTheFile) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  std::string header_length_too_big(8, '\0');
  header_length_too_big[0] = static_cast<char>(0xff);
  header_length_too_big[1] = static_cast<char>(0xff);
  write_file(d / "model.safetensors", header_length_too_big + "{}");
  std::string err = error_of<SafetensorsError>([&] { inspect_model(d.path()); });
  EXPECT_NE(err.find((d / "model.safetensors").string()), std::string::npos) << err;
}

TEST(InspectModel, IndexNamingAMissingShardIsASafetensorsError) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  write_file(d / "model.safetensors.index.json", R"({"weight_map": {"a": "model-00001-of-00002.safetensors"}})");
  std::string err = error_of<SafetensorsError>([&] { inspect_model(d.path()); });
  EXPECT_NE(err.find("model-00001-of-00002.safetensors"), std::string::npos) << err;
}

TEST(InspectModel, ModelConfigForTheConfigMapEntry) {
  TempDir d;
  write_json(d / "config.json", tiny_llama_config());
  write_safetensors(d / "model.safetensors", llama_tensors(kVocab, kHidden, kInter, 2, "BF16"));
  ModelMetadata m = inspect_model(d.path());
  ModelEntry entry;
  entry.name = "tiny";
  entry.status = "Ready";
  entry.config = to_model_config(m);
  json written = json::parse(serialize_model_entry(entry));
  const json& c = written["config"];
  EXPECT_EQ(keys(c), (std::set<std::string>{"modelType", "modelArchitecture", "modelFramework", "modelFormat",
                                            "modelParameterSize", "maxTokens", "modelCapabilities",
                                            "decodedModelConfiguration"}));
  EXPECT_EQ(c["modelFramework"], (json{{"name", "transformers"}, {"version", "4.44.0"}}));
  EXPECT_EQ(c["modelFormat"], (json{{"name", "safetensors"}, {"version", "1.0.0"}}));
  EXPECT_EQ(c["modelParameterSize"], m.parameter_size);
  EXPECT_EQ(c["maxTokens"], 2048);
  EXPECT_EQ(c["modelCapabilities"], json::array({"CHAT"}));
  EXPECT_EQ(c["decodedModelConfiguration"], decoded_summary(m));
}

TEST(InspectModel, ModelConfigCapsMaxTokensAndSkipsUnknownFormat) {
  ModelMetadata m = metadata_from_config({{"model_type", "llama"}, {"max_position_embeddings", 10000000000ull}});
  m.quantization = "int4";
  ModelConfig c = to_model_config(m);
  EXPECT_EQ(c.max_tokens, 2147483647);
  EXPECT_FALSE(c.model_format.has_value());
  ASSERT_TRUE(c.model_framework.has_value());
  EXPECT_EQ(c.model_framework->name, "transformers");
  EXPECT_FALSE(c.model_framework->version.has_value());
  EXPECT_EQ(c.quantization, "int4");
}

// Reference §6.2 lists the 30 model types OME's parser supports; each parses here too, and those
// without architectures get the class OME assumes.
TEST(InspectModel, EveryModelTypeOmeSupports) {
  const std::map<std::string, std::string> types = {
      {"llama", "LlamaForCausalLM"},
      {"llama4", "Llama4ForConditionalGeneration"},
      {"mllama", "MllamaForConditionalGeneration"},
      {"mistral", "MistralForCausalLM"},
      {"mixtral", "MixtralForCausalLM"},
      {"qwen2", ""},
      {"qwen2_vl", ""},
      {"phi", ""},
      {"phi3_v", ""},
      {"gemma", ""},
      {"gemma2", ""},
      {"deepseek_v3", ""},
      {"kimi_k2", ""},
      {"deepseek_vl_v2", "DeepseekVLV2ForCausalLM"},
      {"janus", "JanusMultiModalityCausalLM"},
      {"multi_modality", "JanusMultiModalityCausalLM"},
      {"llava", ""},
      {"bert", ""},
      {"chatglm", ""},
      {"baichuan", ""},
      {"cohere", ""},
      {"command-r", ""},
      {"dbrx", "DbrxForCausalLM"},
      {"exaone", ""},
      {"internlm", ""},
      {"internlm2", ""},
      {"minicpm", ""},
      {"minicpm3", ""},
      {"stablelm", ""},
      {"xverse", ""},
  };
  ASSERT_EQ(types.size(), 30u);
  for (const auto& [type, default_architecture] : types) {
    SCOPED_TRACE(type);
    ModelMetadata m = metadata_from_config({{"model_type", type}, {"max_position_embeddings", 4096}});
    EXPECT_EQ(m.model_type, type);
    EXPECT_EQ(m.architecture, default_architecture);
    EXPECT_EQ(m.context_length, 4096u);
    EXPECT_EQ(m.capabilities.size(), 1u);
    json with_arch = {{"model_type", type}, {"architectures", {"SomeForCausalLM"}}};
    EXPECT_EQ(metadata_from_config(with_arch).architecture, "SomeForCausalLM");
  }
}
