#include <gtest/gtest.h>

#include "modelagent/errors.hpp"
#include "modelagent/model_metadata.hpp"
#include "test_model_support.hpp"

using namespace modelagent;
using nlohmann::json;
using model_test::TempDir;
using model_test::write_file;

namespace {

QuantizationInfo q(const json& quantization_config) {
  return detect_quantization(json{{"model_type", "llama"}, {"quantization_config", quantization_config}});
}

json ct_group(const char* wtype, int wbits, const json& activations = nullptr, int group_size = 0) {
  json weights = {{"num_bits", wbits}, {"type", wtype}, {"strategy", "group"}};
  if (group_size) weights["group_size"] = group_size;
  json group = {{"targets", {"Linear"}}, {"weights", weights}};
  group["input_activations"] = activations;
  return {{"quant_method", "compressed-tensors"}, {"config_groups", {{"group_0", group}}}};
}

}  // namespace

TEST(Quantization, NoneWithoutConfig) {
  QuantizationInfo info = detect_quantization(json{{"model_type", "llama"}});
  EXPECT_FALSE(info.quantized());
  EXPECT_EQ(quantization_crd_value(info), "");
}

TEST(Quantization, Gptq) {
  QuantizationInfo info = q({{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"desc_act", false}});
  EXPECT_EQ(info.method, "gptq");
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(info.scheme, "w4a16");
  EXPECT_EQ(info.source, "config.json quantization_config");
  EXPECT_EQ(quantization_crd_value(info), "int4");

  QuantizationInfo eight = q({{"quant_method", "gptq"}, {"bits", 8}});
  EXPECT_EQ(eight.scheme, "w8a16");
  EXPECT_EQ(quantization_crd_value(eight), "");
}

TEST(Quantization, AwqReadsWBit) {
  QuantizationInfo info = q({{"quant_method", "awq"}, {"w_bit", 4}, {"q_group_size", 128}, {"version", "gemm"}});
  EXPECT_EQ(info.method, "awq");
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(quantization_crd_value(info), "int4");
}

TEST(Quantization, Fp8AndFbgemm) {
  QuantizationInfo fp8 = q({{"quant_method", "fp8"}, {"activation_scheme", "dynamic"}});
  EXPECT_EQ(fp8.scheme, "fp8");
  EXPECT_EQ(quantization_crd_value(fp8), "fp8");
  QuantizationInfo fbgemm = q({{"quant_method", "FBGEMM_FP8"}});
  EXPECT_EQ(fbgemm.method, "fbgemm_fp8");
  EXPECT_EQ(quantization_crd_value(fbgemm), "fbgemm_fp8");
}

TEST(Quantization, CompressedTensorsSchemes) {
  json fp8_dynamic = {{"num_bits", 8}, {"type", "float"}, {"dynamic", true}};
  QuantizationInfo fp8 = q(ct_group("float", 8, fp8_dynamic));
  EXPECT_EQ(fp8.method, "compressed-tensors");
  EXPECT_EQ(fp8.scheme, "fp8");
  EXPECT_EQ(quantization_crd_value(fp8), "fp8");

  QuantizationInfo w4a16 = q(ct_group("int", 4));
  EXPECT_EQ(w4a16.scheme, "w4a16");
  EXPECT_EQ(w4a16.bits, 4);
  EXPECT_EQ(quantization_crd_value(w4a16), "int4");

  QuantizationInfo w8a8 = q(ct_group("int", 8, json{{"num_bits", 8}, {"type", "int"}}));
  EXPECT_EQ(w8a8.scheme, "w8a8");
  EXPECT_EQ(quantization_crd_value(w8a8), "");

  json nv = ct_group("float", 4, json{{"num_bits", 4}, {"type", "float"}}, 16);
  nv["format"] = "nvfp4-pack-quantized";
  QuantizationInfo nvfp4 = q(nv);
  EXPECT_EQ(nvfp4.scheme, "nvfp4");
  EXPECT_EQ(quantization_crd_value(nvfp4), "");

  // Only the format is given: float-quantized means FP8 weights.
  QuantizationInfo by_format = q({{"quant_method", "compressed-tensors"}, {"format", "float-quantized"}});
  EXPECT_EQ(by_format.scheme, "fp8");
  EXPECT_EQ(quantization_crd_value(by_format), "fp8");
}

TEST(Quantization, CompressedTensorsUnderOldKeyAndInTextConfig) {
  json config = {{"model_type", "x"}, {"compression_config", ct_group("int", 4)}};
  EXPECT_EQ(detect_quantization(config).scheme, "w4a16");
  EXPECT_EQ(detect_quantization(config).source, "config.json compression_config");
  json nested = {{"model_type", "mllama"}, {"text_config", {{"quantization_config", {{"quant_method", "fp8"}}}}}};
  EXPECT_EQ(detect_quantization(nested).method, "fp8");
  EXPECT_EQ(detect_quantization(nested).source, "config.json text_config.quantization_config");
}

TEST(Quantization, BitsAndBytes) {
  QuantizationInfo nf4 = q({{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf4"}});
  EXPECT_EQ(nf4.method, "bitsandbytes");
  EXPECT_EQ(nf4.bits, 4);
  EXPECT_EQ(nf4.scheme, "nf4");
  EXPECT_EQ(quantization_crd_value(nf4), "int4");

  QuantizationInfo fp4 = q({{"load_in_4bit", true}, {"load_in_8bit", false}});  // old configs: no quant_method
  EXPECT_EQ(fp4.method, "bitsandbytes");
  EXPECT_EQ(fp4.scheme, "fp4");
  EXPECT_EQ(quantization_crd_value(fp4), "int4");

  QuantizationInfo int8 = q({{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}});
  EXPECT_EQ(int8.bits, 8);
  EXPECT_EQ(int8.scheme, "int8");
  EXPECT_EQ(quantization_crd_value(int8), "");
}

TEST(Quantization, Mxfp4IsKeptButHasNoCrdValue) {
  QuantizationInfo info = q({{"quant_method", "mxfp4"}, {"modules_to_not_convert", {"lm_head"}}});
  EXPECT_EQ(info.method, "mxfp4");
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(quantization_crd_value(info), "");
}

TEST(Quantization, ChatglmQuantizationBit) {
  QuantizationInfo info = detect_quantization(json{{"model_type", "chatglm"}, {"quantization_bit", 4}});
  EXPECT_EQ(info.method, "int4");
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(quantization_crd_value(info), "int4");
  EXPECT_EQ(quantization_crd_value(detect_quantization(json{{"quantization_bit", 8}})), "");
}

TEST(Quantization, TensorRtLlmQuantAlgo) {
  json config = {{"pretrained_config", {{"quantization", {{"quant_algo", "W4A16_AWQ"}, {"group_size", 128}}}}}};
  QuantizationInfo awq = detect_quantization(config);
  EXPECT_EQ(awq.method, "w4a16_awq");
  EXPECT_EQ(awq.scheme, "w4a16");
  EXPECT_EQ(awq.bits, 4);
  EXPECT_EQ(quantization_crd_value(awq), "int4");
  config["pretrained_config"]["quantization"]["quant_algo"] = "FP8";
  EXPECT_EQ(quantization_crd_value(detect_quantization(config)), "fp8");
  config["pretrained_config"]["quantization"]["quant_algo"] = nullptr;
  EXPECT_FALSE(detect_quantization(config).quantized());
}

TEST(Quantization, UnknownMethodKeptVerbatim) {
  QuantizationInfo info = q({{"quant_method", "hqq"}, {"nbits", 4}});
  EXPECT_EQ(info.method, "hqq");
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(quantization_crd_value(info), "int4");
  EXPECT_EQ(quantization_crd_value(q({{"quant_method", "gptq_int4"}})), "int4");
  EXPECT_EQ(quantization_crd_value(q({{"quant_method", "fp8-e4m3"}})), "fp8");
}

TEST(Quantization, OddValuesDoNotThrow) {
  EXPECT_FALSE(q("gptq").quantized());
  EXPECT_FALSE(q(json::array()).quantized());
  EXPECT_FALSE(q(json::object()).quantized());
  EXPECT_EQ(q({{"quant_method", 5}, {"bits", 4}}).method, "");
  QuantizationInfo odd = q({{"quant_method", "gptq"}, {"bits", "four"}});
  EXPECT_EQ(odd.bits, 4);  // the default of GPTQ
  EXPECT_EQ(q({{"quant_method", "gptq"}, {"bits", -3}}).bits, 4);
  EXPECT_EQ(q({{"quant_method", "compressed-tensors"}, {"config_groups", {{"g", "x"}}}}).scheme, "");
}

TEST(Quantization, FromSafetensorsDtypes) {
  QuantizationInfo fp8 = quantization_from_dtypes({{"BF16", 1'000'000}, {"F8_E4M3", 7'000'000}, {"F32", 10}});
  EXPECT_EQ(fp8.method, "fp8");
  EXPECT_EQ(fp8.scheme, "e4m3");
  EXPECT_EQ(fp8.source, "safetensors dtypes");
  EXPECT_EQ(quantization_crd_value(fp8), "fp8");
  EXPECT_EQ(quantization_from_dtypes({{"F8_E5M2", 5}}).scheme, "e5m2");
  QuantizationInfo int8 = quantization_from_dtypes({{"I8", 9}, {"F16", 1}});
  EXPECT_EQ(int8.method, "int8");
  EXPECT_EQ(quantization_crd_value(int8), "");
  // A few FP8 tensors in a BF16 model do not make it an FP8 model.
  EXPECT_FALSE(quantization_from_dtypes({{"BF16", 100}, {"F8_E4M3", 10}}).quantized());
  EXPECT_FALSE(quantization_from_dtypes({}).quantized());
}

TEST(QuantizationSidecar, AutoGptqQuantizeConfig) {
  TempDir d;
  write_file(d / "quantize_config.json", R"({"bits": 4, "group_size": 128, "desc_act": true})");
  QuantizationInfo info = detect_quantization_sidecar(d.path());
  EXPECT_EQ(info.method, "gptq");
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(info.source, "quantize_config.json");
  EXPECT_EQ(quantization_crd_value(info), "int4");
}

TEST(QuantizationSidecar, AutoAwqQuantConfig) {
  TempDir d;
  write_file(d / "quant_config.json", R"({"zero_point": true, "q_group_size": 128, "w_bit": 4, "version": "GEMM"})");
  QuantizationInfo info = detect_quantization_sidecar(d.path());
  EXPECT_EQ(info.method, "awq");
  EXPECT_EQ(info.bits, 4);
}

TEST(QuantizationSidecar, ModelOptHfQuantConfig) {
  TempDir d;
  write_file(d / "hf_quant_config.json",
             R"({"producer": {"name": "modelopt", "version": "0.19.0"},
                 "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}})");
  QuantizationInfo info = detect_quantization_sidecar(d.path());
  EXPECT_EQ(info.method, "modelopt");
  EXPECT_EQ(info.scheme, "fp8");
  EXPECT_EQ(quantization_crd_value(info), "fp8");
}

TEST(QuantizationSidecar, NoneAndMalformed) {
  TempDir d;
  EXPECT_FALSE(detect_quantization_sidecar(d.path()).quantized());
  write_file(d / "quantize_config.json", "{\"bits\": 4,");
  try {
    detect_quantization_sidecar(d.path());
    FAIL() << "no error";
  } catch (const ModelConfigError& e) {
    EXPECT_NE(std::string(e.what()).find((d / "quantize_config.json").string()), std::string::npos);
  }
}
