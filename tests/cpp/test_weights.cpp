// Locating safetensors shards and counting logical parameters, including packed low-bit checkpoints.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modelagent/errors.hpp"
#include "modelagent/safetensors.hpp"
#include "modelagent/weights.hpp"
#include "support/safetensors_writer.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using modelagent::find_safetensors_files;
using modelagent::QuantizationHint;
using modelagent::SafetensorsError;
using modelagent::summarize_safetensors;
using modelagent::WeightsSummary;

namespace {

using testsupport::expect_error;
using testsupport::Spec;
using testsupport::TempDir;
using testsupport::write_shard;
using Specs = std::vector<Spec>;

void append(Specs& into, const Specs& more) { into.insert(into.end(), more.begin(), more.end()); }

void write_text(const fs::path& file, const std::string& text) { std::ofstream(file, std::ios::binary) << text; }

WeightsSummary summarize_one(const TempDir& dir, const Specs& specs, const QuantizationHint& hint = {}) {
  fs::path file = dir.path() / "model.safetensors";
  write_shard(file, specs);
  return summarize_safetensors({file}, hint);
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Llama-2-7B geometry (hidden 4096, MLP 11008, vocab 32000), one decoder layer.
constexpr uint64_t kHidden = 4096, kMlp = 11008, kVocab = 32000;
constexpr uint64_t kLayerLinearParams = 4 * kHidden * kHidden + 3 * kHidden * kMlp;
// Embedding + untied lm_head + final norm + one layer's linears and its two RMSNorms.
constexpr uint64_t kOneLayerModel = 2 * kVocab * kHidden + kHidden + kLayerLinearParams + 2 * kHidden;

struct Linear {
  std::string name;
  uint64_t in, out;
};
std::vector<Linear> llama_linears(const std::string& layer) {
  return {{layer + ".self_attn.q_proj", kHidden, kHidden}, {layer + ".self_attn.k_proj", kHidden, kHidden},
          {layer + ".self_attn.v_proj", kHidden, kHidden}, {layer + ".self_attn.o_proj", kHidden, kHidden},
          {layer + ".mlp.gate_proj", kHidden, kMlp},       {layer + ".mlp.up_proj", kHidden, kMlp},
          {layer + ".mlp.down_proj", kMlp, kHidden}};
}

// The unquantized tensors around one layer, in `dtype`.
Specs llama_skeleton(const std::string& dtype) {
  return {{"model.embed_tokens.weight", dtype, {kVocab, kHidden}},
          {"lm_head.weight", dtype, {kVocab, kHidden}},
          {"model.norm.weight", dtype, {kHidden}},
          {"model.layers.0.input_layernorm.weight", dtype, {kHidden}},
          {"model.layers.0.post_attention_layernorm.weight", dtype, {kHidden}}};
}

// AutoGPTQ layout: qweight [in*bits/32, out], qzeros [in/group, out*bits/32], scales [in/group, out], g_idx [in].
Specs gptq_layer(unsigned bits) {
  Specs s = llama_skeleton("F16");
  for (const auto& l : llama_linears("model.layers.0")) {
    s.push_back({l.name + ".qweight", "I32", {l.in * bits / 32, l.out}});
    s.push_back({l.name + ".qzeros", "I32", {l.in / 128, l.out * bits / 32}});
    s.push_back({l.name + ".scales", "F16", {l.in / 128, l.out}});
    s.push_back({l.name + ".g_idx", "I32", {l.in}});
  }
  return s;
}

}  // namespace

TEST(FindSafetensorsFiles, TinyRandomPhiModelHasTwoUnindexedShards) {
  fs::path dir = fs::path(MODELAGENT_FIXTURES_DIR) / "model-configs/tiny-random-PhiModel";
  auto files = find_safetensors_files(dir);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "model-1-of-2.safetensors");
  EXPECT_EQ(files[1].filename(), "model-2-of-2.safetensors");
}

TEST(SummarizeSafetensors, TinyRandomPhiModelCountsItsTensorsOnce) {
  // hf-internal-testing/tiny-random-PhiModel (config.json: vocab 1024, hidden 32, MLP 37, 2 layers, untied):
  // embed 1024*32 = 32768, final LayerNorm 2*32, per layer LayerNorm 64 + q/k/v/dense 4*(32*32+32) +
  // fc1 37*32+37 + fc2 32*37+32 = 6725; total 32768 + 64 + 2*6725 = 46282. The two shards are byte-identical
  // copies (SOURCES.md), so summing them would give 92564. Published: the hub page
  // https://huggingface.co/hf-internal-testing/tiny-random-PhiModel shows "Model size 46.3k params, F32"
  // for its single 188008-byte model.safetensors (the size of each fixture shard).
  fs::path dir = fs::path(MODELAGENT_FIXTURES_DIR) / "model-configs/tiny-random-PhiModel";
  auto summary = summarize_safetensors(find_safetensors_files(dir), {});
  EXPECT_EQ(summary.parameter_count, 46282u);
  EXPECT_EQ(summary.stored_bytes, 46282u * 4);
  EXPECT_EQ(summary.dtype_parameters.size(), 1u);
  EXPECT_EQ(summary.dtype_parameters.at("F32"), 46282u);
  EXPECT_FALSE(summary.packed_low_bit);
  EXPECT_TRUE(summary.quantization_tensors_skipped.empty());
  EXPECT_EQ(summary.files.size(), 2u);
}

TEST(FindSafetensorsFiles, IndexNamesTheShardsUniqueAndSorted) {
  TempDir dir;
  write_shard(dir.path() / "model-00001-of-00002.safetensors", {{"a.weight", "F16", {4, 4}}, {"b.weight", "F16", {4}}});
  write_shard(dir.path() / "model-00002-of-00002.safetensors", {{"c.weight", "F16", {8}}});
  // Not in the index: Mistral-style consolidated weights beside the HF shards must not be counted.
  write_shard(dir.path() / "consolidated.safetensors", {{"layers.0.attention.wq.weight", "F16", {4, 4}}});
  write_text(dir.path() / "model.safetensors.index.json",
             R"({"metadata":{"total_size":56},"weight_map":{"c.weight":"model-00002-of-00002.safetensors",
                 "a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00001-of-00002.safetensors"}})");
  auto files = find_safetensors_files(dir.path());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], dir.path() / "model-00001-of-00002.safetensors");
  EXPECT_EQ(files[1], dir.path() / "model-00002-of-00002.safetensors");
  auto summary = summarize_safetensors(files, {});
  EXPECT_EQ(summary.parameter_count, 16u + 4 + 8);
  EXPECT_EQ(summary.stored_bytes, 56u);
}

TEST(FindSafetensorsFiles, MissingShardIsNamed) {
  TempDir dir;
  write_shard(dir.path() / "model-00001-of-00002.safetensors", {{"a.weight", "F16", {4}}});
  write_text(dir.path() / "model.safetensors.index.json",
             R"({"weight_map":{"a.weight":"model-00001-of-00002.safetensors",
                               "b.weight":"model-00002-of-00002.safetensors"}})");
  expect_error([&] { find_safetensors_files(dir.path()); },
               {(dir.path() / "model-00002-of-00002.safetensors").string(), "missing"});
}

TEST(FindSafetensorsFiles, BadIndexesAreRejectedNamingTheIndex) {
  TempDir dir;
  const fs::path index = dir.path() / "model.safetensors.index.json";
  write_text(index, R"({"weight_map":{"a":"x.safetensors",})");
  expect_error([&] { find_safetensors_files(dir.path()); }, {index.string(), "not valid JSON", "byte"});
  write_text(index, R"({"metadata":{}})");
  expect_error([&] { find_safetensors_files(dir.path()); }, {index.string(), "weight_map"});
  write_text(index, R"([1])");
  expect_error([&] { find_safetensors_files(dir.path()); }, {index.string(), "JSON object"});
  write_text(index, R"({"weight_map":{"a":3}})");
  expect_error([&] { find_safetensors_files(dir.path()); }, {index.string(), "tensor 'a'", "not a file name"});
  for (const char* hostile : {"../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors", ""}) {
    write_text(index, std::string(R"({"weight_map":{"a":")") + hostile + R"("}})");
    expect_error([&] { find_safetensors_files(dir.path()); }, {index.string(), "not a file inside"});
  }
}

TEST(FindSafetensorsFiles, OtherIndexNamesAreUsedWhenTheStandardOneIsAbsent) {
  TempDir dir;
  write_shard(dir.path() / "diffusion_pytorch_model-00001-of-00001.safetensors", {{"a", "F16", {2}}});
  write_shard(dir.path() / "unrelated.safetensors", {{"b", "F16", {2}}});
  write_text(dir.path() / "diffusion_pytorch_model.safetensors.index.json",
             R"({"weight_map":{"a":"diffusion_pytorch_model-00001-of-00001.safetensors"}})");
  auto files = find_safetensors_files(dir.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename(), "diffusion_pytorch_model-00001-of-00001.safetensors");
}

TEST(FindSafetensorsFiles, WithoutAnIndexEverySafetensorsFileDirectlyInTheDirectory) {
  TempDir dir;
  EXPECT_TRUE(find_safetensors_files(dir.path()).empty());
  EXPECT_TRUE(find_safetensors_files(dir.path() / "absent").empty());
  write_shard(dir.path() / "b.safetensors", {{"x", "F32", {1}}});
  write_shard(dir.path() / "a.safetensors", {{"y", "F32", {1}}});
  write_text(dir.path() / "pytorch_model.bin", "not safetensors");
  write_text(dir.path() / "notes.safetensors.txt", "");
  fs::create_directory(dir.path() / "sub");
  write_shard(dir.path() / "sub" / "c.safetensors", {{"z", "F32", {1}}});
  fs::create_directory(dir.path() / "dir.safetensors");
  fs::create_symlink(dir.path() / "a.safetensors", dir.path() / "link.safetensors");
  fs::create_symlink(dir.path() / "gone.safetensors", dir.path() / "broken.safetensors");
  auto files = find_safetensors_files(dir.path());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].filename(), "a.safetensors");
  EXPECT_EQ(files[1].filename(), "b.safetensors");
  EXPECT_EQ(files[2].filename(), "link.safetensors");
  // The symlink duplicates a.safetensors: its tensor counts once.
  EXPECT_EQ(summarize_safetensors(files, {}).parameter_count, 2u);
}

TEST(SummarizeSafetensors, SameNameInTwoFilesCountsOnceButConflictingShapesFail) {
  TempDir dir;
  write_shard(dir.path() / "model.safetensors", {{"w", "F32", {3, 4}}, {"b", "F32", {4}}});
  write_shard(dir.path() / "model.fp16.safetensors", {{"w", "F16", {3, 4}}, {"b", "F16", {4}}});
  auto s = summarize_safetensors({dir.path() / "model.fp16.safetensors", dir.path() / "model.safetensors"}, {});
  EXPECT_EQ(s.parameter_count, 16u);
  EXPECT_EQ(s.dtype_parameters.at("F16"), 16u);
  EXPECT_EQ(s.dtype_parameters.count("F32"), 0u);

  write_shard(dir.path() / "other.safetensors", {{"w", "F32", {4, 3}}});
  expect_error([&] { summarize_safetensors({dir.path() / "model.safetensors", dir.path() / "other.safetensors"}, {}); },
               {"other.safetensors", "tensor 'w'", "[4, 3]", "model.safetensors", "[3, 4]"});
}

TEST(SummarizeSafetensors, HostileShardErrorNamesTheShard) {
  TempDir dir;
  write_shard(dir.path() / "good.safetensors", {{"w", "F32", {2}}});
  write_text(dir.path() / "bad.safetensors", std::string("\x10\0\0\0\0\0\0\0{\"w\":1}         ", 24));
  expect_error([&] { summarize_safetensors({dir.path() / "good.safetensors", dir.path() / "bad.safetensors"}, {}); },
               {(dir.path() / "bad.safetensors").string(), "tensor 'w'"});
}

TEST(SummarizeSafetensors, GptqLlamaLayerReportsLogicalCount) {
  TempDir dir;
  auto s = summarize_one(dir, gptq_layer(4), {"gptq", 4});
  EXPECT_EQ(s.parameter_count, kOneLayerModel);
  EXPECT_TRUE(s.packed_low_bit);
  EXPECT_EQ(s.dtype_parameters.at("I32"), kLayerLinearParams);
  EXPECT_EQ(s.dtype_parameters.at("F16"), 2 * kVocab * kHidden + 3 * kHidden);
  EXPECT_TRUE(contains(s.quantization_tensors_skipped, "qzeros x7"));
  EXPECT_TRUE(contains(s.quantization_tensors_skipped, "scales x7"));
  EXPECT_TRUE(contains(s.quantization_tensors_skipped, "g_idx x7"));
  EXPECT_EQ(s.quantization_tensors_skipped.size(), 3u);
  // Without a hint the sibling tensors identify GPTQ and 4 bits is assumed.
  EXPECT_EQ(summarize_one(dir, gptq_layer(4), {}).parameter_count, kOneLayerModel);
}

TEST(SummarizeSafetensors, GptqBitsComeFromTheHint) {
  TempDir dir;
  EXPECT_EQ(summarize_one(dir, gptq_layer(8), {"gptq", 8}).parameter_count, kOneLayerModel);
  // 3-bit packs 32 values into three int32 words.
  EXPECT_EQ(summarize_one(dir, gptq_layer(3), {"gptq", 3}).parameter_count, kOneLayerModel);
  // The same 8-bit tensors read as 4-bit would double the linear layers.
  EXPECT_EQ(summarize_one(dir, gptq_layer(8), {"gptq", 4}).parameter_count, kOneLayerModel + kLayerLinearParams);
  expect_error([&] { summarize_one(dir, gptq_layer(4), {"gptq", 64}); },
               {"model.safetensors", "qweight", "64-bit", "I32"});
}

TEST(SummarizeSafetensors, GptqBiasesAndUnquantizedLmHeadAreParameters) {
  // Qwen2-style q/k/v biases beside packed weights; lm_head left in F16.
  TempDir dir;
  Specs s = gptq_layer(4);
  for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
    s.push_back({std::string("model.layers.0.self_attn.") + p + ".bias", "F16", {kHidden}});
  }
  auto sum = summarize_one(dir, s, {"gptq", 4});
  EXPECT_EQ(sum.parameter_count, kOneLayerModel + 3 * kHidden);
}

TEST(SummarizeSafetensors, AwqLlamaLayerReportsLogicalCount) {
  // AutoAWQ GEMM layout: qweight [in, out/8], qzeros [in/group, out/8], scales [in/group, out].
  TempDir dir;
  Specs s = llama_skeleton("F16");
  for (const auto& l : llama_linears("model.layers.0")) {
    s.push_back({l.name + ".qweight", "I32", {l.in, l.out / 8}});
    s.push_back({l.name + ".qzeros", "I32", {l.in / 128, l.out / 8}});
    s.push_back({l.name + ".scales", "F16", {l.in / 128, l.out}});
  }
  auto sum = summarize_one(dir, s, {"awq", 4});
  EXPECT_EQ(sum.parameter_count, kOneLayerModel);
  EXPECT_TRUE(sum.packed_low_bit);
  EXPECT_EQ(sum.quantization_tensors_skipped, (std::vector<std::string>{"qzeros x7", "scales x7"}));
}

TEST(SummarizeSafetensors, BitsAndBytes4BitReportsLogicalCount) {
  // bitsandbytes NF4 with double quantization: weight U8 [in*out/2, 1] plus its quant-state tensors.
  TempDir dir;
  Specs s = llama_skeleton("F16");
  for (const auto& l : llama_linears("model.layers.0")) {
    const uint64_t n = l.in * l.out;
    s.push_back({l.name + ".weight", "U8", {n / 2, 1}});
    s.push_back({l.name + ".weight.absmax", "U8", {n / 64}});
    s.push_back({l.name + ".weight.quant_map", "F32", {16}});
    s.push_back({l.name + ".weight.nested_absmax", "F32", {n / 64 / 256}});
    s.push_back({l.name + ".weight.nested_quant_map", "F32", {256}});
    s.push_back({l.name + ".weight.quant_state.bitsandbytes__nf4", "U8", {155}});
  }
  auto sum = summarize_one(dir, s, {"bitsandbytes", 4});
  EXPECT_EQ(sum.parameter_count, kOneLayerModel);
  EXPECT_TRUE(sum.packed_low_bit);
  EXPECT_EQ(sum.dtype_parameters.at("U8"), kLayerLinearParams);
  EXPECT_TRUE(contains(sum.quantization_tensors_skipped, "weight.absmax x7"));
  EXPECT_TRUE(contains(sum.quantization_tensors_skipped, "weight.quant_state.* x7"));
  EXPECT_EQ(sum.quantization_tensors_skipped.size(), 5u);
  // Identified from the quant-state tensors alone, without a hint.
  EXPECT_EQ(summarize_one(dir, s, {}).parameter_count, kOneLayerModel);
}

TEST(SummarizeSafetensors, BitsAndBytes8BitCountsInt8WeightsOnce) {
  TempDir dir;
  Specs s = llama_skeleton("F16");
  for (const auto& l : llama_linears("model.layers.0")) {
    s.push_back({l.name + ".weight", "I8", {l.out, l.in}});
    s.push_back({l.name + ".SCB", "F32", {l.out}});
    s.push_back({l.name + ".weight_format", "U8", {}});
  }
  auto sum = summarize_one(dir, s, {"bitsandbytes", 8});
  EXPECT_EQ(sum.parameter_count, kOneLayerModel);
  EXPECT_FALSE(sum.packed_low_bit);
  EXPECT_EQ(sum.quantization_tensors_skipped, (std::vector<std::string>{"SCB x7", "weight_format x7"}));
}

TEST(SummarizeSafetensors, Mxfp4GptOssLayerReportsLogicalCount) {
  // openai/gpt-oss-20b layer geometry: hidden 2880, 32 experts, expert MLP 2880, 64 query heads and
  // 8 KV heads of 64; MXFP4 blocks U8 [experts, rows, cols/32, 16] with one E8M0 scale per 32 values.
  TempDir dir;
  const uint64_t h = 2880, e = 32;
  const std::string p = "model.layers.0.";
  Specs s = {{"model.embed_tokens.weight", "BF16", {201088, h}},
             {"lm_head.weight", "BF16", {201088, h}},
             {"model.norm.weight", "BF16", {h}},
             {p + "input_layernorm.weight", "BF16", {h}},
             {p + "post_attention_layernorm.weight", "BF16", {h}},
             {p + "self_attn.q_proj.weight", "BF16", {4096, h}},
             {p + "self_attn.q_proj.bias", "BF16", {4096}},
             {p + "self_attn.k_proj.weight", "BF16", {512, h}},
             {p + "self_attn.k_proj.bias", "BF16", {512}},
             {p + "self_attn.v_proj.weight", "BF16", {512, h}},
             {p + "self_attn.v_proj.bias", "BF16", {512}},
             {p + "self_attn.o_proj.weight", "BF16", {h, 4096}},
             {p + "self_attn.o_proj.bias", "BF16", {h}},
             {p + "self_attn.sinks", "BF16", {64}},
             {p + "mlp.router.weight", "BF16", {e, h}},
             {p + "mlp.router.bias", "BF16", {e}},
             {p + "mlp.experts.gate_up_proj_blocks", "U8", {e, 2 * h, h / 32, 16}},
             {p + "mlp.experts.gate_up_proj_scales", "U8", {e, 2 * h, h / 32}},
             {p + "mlp.experts.gate_up_proj_bias", "BF16", {e, 2 * h}},
             {p + "mlp.experts.down_proj_blocks", "U8", {e, h, h / 32, 16}},
             {p + "mlp.experts.down_proj_scales", "U8", {e, h, h / 32}},
             {p + "mlp.experts.down_proj_bias", "BF16", {e, h}}};
  const uint64_t dense = 2 * 201088 * h + 3 * h + (4096 * h + 4096) + 2 * (512 * h + 512) + (h * 4096 + h) + 64 +
                         (e * h + e) + e * 2 * h + e * h;
  const uint64_t experts = e * 2 * h * h + e * h * h;
  auto sum = summarize_one(dir, s, {"mxfp4", 0});
  EXPECT_EQ(sum.parameter_count, dense + experts);
  EXPECT_TRUE(sum.packed_low_bit);
  EXPECT_EQ(sum.dtype_parameters.at("U8"), experts);
  EXPECT_EQ(sum.quantization_tensors_skipped, (std::vector<std::string>{"*_scales x2"}));
  EXPECT_EQ(summarize_one(dir, s, {}).parameter_count, dense + experts);
}

TEST(SummarizeSafetensors, CompressedTensorsPackQuantizedReportsLogicalCount) {
  // compressed-tensors W4A16 pack-quantized: weight_packed I32 [out, in/8], weight_scale [out, in/group],
  // weight_zero_point for the asymmetric scheme, weight_shape I64 [2].
  TempDir dir;
  Specs s = llama_skeleton("BF16");
  for (const auto& l : llama_linears("model.layers.0")) {
    s.push_back({l.name + ".weight_packed", "I32", {l.out, l.in / 8}});
    s.push_back({l.name + ".weight_scale", "BF16", {l.out, l.in / 128}});
    s.push_back({l.name + ".weight_zero_point", "I32", {l.out / 8, l.in / 128}});
    s.push_back({l.name + ".weight_shape", "I64", {2}});
  }
  auto sum = summarize_one(dir, s, {"compressed-tensors", 4});
  EXPECT_EQ(sum.parameter_count, kOneLayerModel);
  EXPECT_TRUE(sum.packed_low_bit);
  EXPECT_EQ(sum.quantization_tensors_skipped,
            (std::vector<std::string>{"weight_scale x7", "weight_shape x7", "weight_zero_point x7"}));
}

TEST(SummarizeSafetensors, CompressedTensorsNvfp4PackedInU8) {
  // NVFP4: two FP4 values per U8 byte, FP8 block scales, per-tensor global scales.
  TempDir dir;
  Specs s = llama_skeleton("BF16");
  for (const auto& l : llama_linears("model.layers.0")) {
    s.push_back({l.name + ".weight_packed", "U8", {l.out, l.in / 2}});
    s.push_back({l.name + ".weight_scale", "F8_E4M3", {l.out, l.in / 16}});
    s.push_back({l.name + ".weight_global_scale", "F32", {1}});
    s.push_back({l.name + ".input_global_scale", "F32", {1}});
  }
  EXPECT_EQ(summarize_one(dir, s, {"compressed-tensors", 4}).parameter_count, kOneLayerModel);
}

TEST(SummarizeSafetensors, ModelOptNvfp4WeightsAreUnpacked) {
  // NVIDIA ModelOpt NVFP4: weight U8 [out, in/2] (two E2M1 values per byte), weight_scale F8_E4M3
  // [out, in/16], per-tensor weight_scale_2 and input_scale.
  TempDir dir;
  Specs s = llama_skeleton("BF16");
  for (const auto& l : llama_linears("model.layers.0")) {
    s.push_back({l.name + ".weight", "U8", {l.out, l.in / 2}});
    s.push_back({l.name + ".weight_scale", "F8_E4M3", {l.out, l.in / 16}});
    s.push_back({l.name + ".weight_scale_2", "F32", {}});
    s.push_back({l.name + ".input_scale", "F32", {}});
  }
  auto sum = summarize_one(dir, s, {"modelopt", 4});
  EXPECT_EQ(sum.parameter_count, kOneLayerModel);
  EXPECT_TRUE(sum.packed_low_bit);
  EXPECT_EQ(sum.quantization_tensors_skipped,
            (std::vector<std::string>{"input_scale x7", "weight_scale x7", "weight_scale_2 x7"}));
  EXPECT_EQ(summarize_one(dir, s, {}).parameter_count, kOneLayerModel);

  // An 8-bit U8 weight with a per-channel F32 scale is not packed.
  Specs u8 = llama_skeleton("BF16");
  for (const auto& l : llama_linears("model.layers.0")) {
    u8.push_back({l.name + ".weight", "U8", {l.out, l.in}});
    u8.push_back({l.name + ".weight_scale", "F32", {l.out, 1}});
    u8.push_back({l.name + ".weight_zero_point", "U8", {l.out, 1}});
  }
  auto plain = summarize_one(dir, u8, {"compressed-tensors", 8});
  EXPECT_EQ(plain.parameter_count, kOneLayerModel);
  EXPECT_FALSE(plain.packed_low_bit);
}

TEST(SummarizeSafetensors, Fp8CheckpointsDropScalesButCountWeights) {
  TempDir dir;
  // compressed-tensors FP8 (per-channel weight scale, static per-tensor input scale, FP8 KV cache scales).
  Specs s = llama_skeleton("BF16");
  for (const auto& l : llama_linears("model.layers.0")) {
    s.push_back({l.name + ".weight", "F8_E4M3", {l.out, l.in}});
    s.push_back({l.name + ".weight_scale", "F32", {l.out, 1}});
    s.push_back({l.name + ".input_scale", "F32", {1}});
  }
  s.push_back({"model.layers.0.self_attn.k_scale", "F32", {}});
  s.push_back({"model.layers.0.self_attn.v_scale", "F32", {}});
  auto sum = summarize_one(dir, s, {"compressed-tensors", 8});
  EXPECT_EQ(sum.parameter_count, kOneLayerModel);
  EXPECT_FALSE(sum.packed_low_bit);
  EXPECT_EQ(sum.dtype_parameters.at("F8_E4M3"), kLayerLinearParams);
  EXPECT_EQ(sum.quantization_tensors_skipped,
            (std::vector<std::string>{"input_scale x7", "k_scale x1", "v_scale x1", "weight_scale x7"}));

  // DeepSeek-V3 style block FP8: weight_scale_inv [ceil(out/128), ceil(in/128)], no hint needed.
  Specs d = llama_skeleton("BF16");
  for (const auto& l : llama_linears("model.layers.0")) {
    d.push_back({l.name + ".weight", "F8_E4M3", {l.out, l.in}});
    d.push_back({l.name + ".weight_scale_inv", "F32", {(l.out + 127) / 128, (l.in + 127) / 128}});
  }
  EXPECT_EQ(summarize_one(dir, d, {}).parameter_count, kOneLayerModel);
}

TEST(SummarizeSafetensors, SuffixAloneNeverDropsARealParameter) {
  TempDir dir;
  // An unquantized model whose real parameters share names with quantization auxiliaries.
  Specs s = {{"encoder.layer_norm.scale", "F32", {512}},
             {"encoder.block.scales", "F32", {8, 512}},
             {"encoder.block.g_idx", "F32", {4}},
             {"decoder.attn.weight", "BF16", {64, 64}},
             {"decoder.attn.weight_scale", "BF16", {64}},
             {"decoder.attn.input_scale", "BF16", {1}},
             {"decoder.attn.k_scale", "F32", {}},
             {"decoder.experts.up_blocks", "U8", {4, 4}},
             {"lm_head.weight", "BF16", {100, 64}}};
  auto sum = summarize_one(dir, s, {});
  EXPECT_EQ(sum.parameter_count, 512u + 8 * 512 + 4 + 64 * 64 + 64 + 1 + 1 + 16 + 100 * 64);
  EXPECT_FALSE(sum.packed_low_bit);
  EXPECT_TRUE(sum.quantization_tensors_skipped.empty());

  // In a GPTQ model, a learned per-head k_scale vector (not a scalar) stays a parameter.
  Specs g = gptq_layer(4);
  g.push_back({"model.layers.0.self_attn.k_scale", "F16", {32}});
  EXPECT_EQ(summarize_one(dir, g, {"gptq", 4}).parameter_count, kOneLayerModel + 32);
}

TEST(SummarizeSafetensors, PersistedBuffersAreNotParameters) {
  TempDir dir;
  Specs s = {{"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {64}},
             {"embeddings.position_ids", "I64", {1, 512}},
             {"embeddings.word_embeddings.weight", "F32", {100, 16}},
             {"h.0.attn.bias", "F32", {1, 1, 1024, 1024}},
             {"h.0.attn.masked_bias", "F32", {}},
             {"h.0.attn.c_attn.bias", "F32", {48}}};
  auto sum = summarize_one(dir, s, {});
  EXPECT_EQ(sum.parameter_count, 100u * 16 + 48);
  EXPECT_EQ(sum.quantization_tensors_skipped.size(), 4u);
}

TEST(SummarizeSafetensors, ShardedQuantizedModelAcrossFiles) {
  // GPTQ layer split over two shards: the qweight in one file, its qzeros/scales/g_idx in the other.
  TempDir dir;
  Specs all = gptq_layer(4), first, second;
  for (const auto& t : all) (t.name.find(".qweight") != std::string::npos ? first : second).push_back(t);
  write_shard(dir.path() / "model-00001-of-00002.safetensors", first);
  write_shard(dir.path() / "model-00002-of-00002.safetensors", second);
  nlohmann::json index;
  for (const auto& t : first) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : second) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  write_text(dir.path() / "model.safetensors.index.json", index.dump());
  auto files = find_safetensors_files(dir.path());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(summarize_safetensors(files, {"gptq", 4}).parameter_count, kOneLayerModel);
}

TEST(SummarizeSafetensors, NoFilesGivesAnEmptySummary) {
  auto sum = summarize_safetensors({}, {});
  EXPECT_EQ(sum.parameter_count, 0u);
  EXPECT_EQ(sum.stored_bytes, 0u);
  EXPECT_TRUE(sum.files.empty());
}

TEST(SummarizeSafetensors, ManyShardsGiveTheSummaryOfOneFileAndTheFirstBadShardInFileOrder) {
  // Block-FP8 layers spread over 48 shards (headers are read on several threads), each weight's scale
  // in a different shard from the weight, against the same tensors in one file.
  TempDir dir;
  Specs all = llama_skeleton("BF16");
  for (int layer = 0; layer < 24; ++layer) {
    for (const auto& l : llama_linears("model.layers." + std::to_string(layer))) {
      all.push_back({l.name + ".weight", "F8_E4M3", {l.out, l.in}});
      all.push_back({l.name + ".weight_scale_inv", "F32", {(l.out + 127) / 128, (l.in + 127) / 128}});
    }
  }
  constexpr size_t kShards = 48;
  auto shard_name = [](size_t i) {
    std::string n = std::to_string(i + 1);
    return "model-" + std::string(5 - n.size(), '0') + n + "-of-00048.safetensors";
  };
  std::vector<Specs> parts(kShards);
  for (size_t i = 0; i < all.size(); ++i) parts[i % kShards].push_back(all[i]);
  nlohmann::json index;
  for (size_t s = 0; s < kShards; ++s) {
    write_shard(dir.path() / shard_name(s), parts[s]);
    for (const auto& t : parts[s]) index["weight_map"][t.name] = shard_name(s);
  }
  // A shard in a subdirectory is named by the index but not seen by listing the model directory.
  fs::create_directory(dir.path() / "extra");
  write_shard(dir.path() / "extra" / "rotary.safetensors", {{"model.rotary.weight", "BF16", {64}}});
  index["weight_map"]["model.rotary.weight"] = "extra/rotary.safetensors";
  all.push_back({"model.rotary.weight", "BF16", {64}});
  write_text(dir.path() / "model.safetensors.index.json", index.dump());

  auto files = find_safetensors_files(dir.path());
  ASSERT_EQ(files.size(), kShards + 1);
  EXPECT_EQ(files[0], dir.path() / "extra" / "rotary.safetensors");
  for (size_t s = 0; s < kShards; ++s) EXPECT_EQ(files[s + 1], dir.path() / shard_name(s));

  TempDir single;
  WeightsSummary one = summarize_one(single, all);
  WeightsSummary many = summarize_safetensors(files, {});
  EXPECT_EQ(many.files, files);
  EXPECT_EQ(many.parameter_count, one.parameter_count);
  EXPECT_EQ(many.parameter_count, kOneLayerModel + 23 * kLayerLinearParams + 64);
  EXPECT_EQ(many.stored_bytes, one.stored_bytes);
  EXPECT_EQ(many.dtype_parameters, one.dtype_parameters);
  EXPECT_EQ(many.packed_low_bit, one.packed_low_bit);
  EXPECT_EQ(many.quantization_tensors_skipped, one.quantization_tensors_skipped);
  EXPECT_EQ(many.quantization_tensors_skipped, (std::vector<std::string>{"weight_scale_inv x168"}));

  // Two bad shards: the earlier one in file order is reported, however the reads were scheduled.
  const std::string truncated("\xff\0\0\0\0\0\0\0{", 9);
  write_text(dir.path() / shard_name(40), truncated);
  write_text(dir.path() / shard_name(9), truncated);
  for (int run = 0; run < 20; ++run) {
    try {
      summarize_safetensors(files, {});
      ADD_FAILURE() << "no SafetensorsError thrown";
    } catch (const SafetensorsError& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.rfind((dir.path() / shard_name(9)).string() + ":", 0), 0u) << msg;
      EXPECT_EQ(msg.find(shard_name(40)), std::string::npos) << msg;
    }
  }
}
