#include <gtest/gtest.h>

#include "modelagent/model_metadata.hpp"

using namespace modelagent;
using nlohmann::json;

namespace {

std::string capability(const json& config, bool sentence_transformers = false) {
  auto caps = detect_capabilities(config, sentence_transformers);
  EXPECT_EQ(caps.size(), 1u);
  return caps.empty() ? "" : caps[0];
}

json model(const char* type, const char* arch) { return {{"model_type", type}, {"architectures", {arch}}}; }

}  // namespace

TEST(Capabilities, CausalLanguageModelsChat) {
  EXPECT_EQ(capability(model("llama", "LlamaForCausalLM")), "CHAT");
  EXPECT_EQ(capability(model("qwen3_moe", "Qwen3MoeForCausalLM")), "CHAT");
  EXPECT_EQ(capability(model("gpt2", "GPT2LMHeadModel")), "CHAT");
  EXPECT_EQ(capability(model("chatglm", "ChatGLMModel")), "CHAT");  // its *Model class has the LM head
  EXPECT_EQ(capability(json{{"model_type", "brand_new"}}), "CHAT");
  EXPECT_EQ(capability(json::object()), "CHAT");
}

TEST(Capabilities, VisionWinsOverEverythingElse) {
  EXPECT_EQ(capability({{"model_type", "gemma3"}, {"vision_config", {{"hidden_size", 1152}}}}), "VISION");
  EXPECT_EQ(capability({{"model_type", "llava"}, {"mm_vision_tower", "openai/clip-vit-large-patch14-336"}}), "VISION");
  EXPECT_EQ(capability({{"model_type", "phi3_v"}, {"img_processor", {{"name", "clip_vision_model"}}}}), "VISION");
  EXPECT_EQ(capability({{"model_type", "qwen"}, {"visual", {{"layers", 48}}}}), "VISION");
  EXPECT_EQ(capability(model("siglip_vision_model", "SiglipVisionModel")), "VISION");
  json embedder_with_vision = model("bert", "BertModel");
  embedder_with_vision["vision_config"] = {{"layers", 2}};
  EXPECT_EQ(capability(embedder_with_vision), "VISION");
}

TEST(Capabilities, EmptyOrNullVisionTowerIsNotVision) {
  EXPECT_FALSE(has_vision({{"vision_config", nullptr}}));
  EXPECT_FALSE(has_vision({{"vision_config", json::object()}}));
  EXPECT_FALSE(has_vision({{"mm_vision_tower", ""}}));
  EXPECT_FALSE(has_vision({{"vision_tower", 5}}));
  EXPECT_TRUE(has_vision({{"vision_tower", "google/siglip-so400m-patch14-384"}}));
}

TEST(Capabilities, EncodersAndBaseModelClassesAreEmbedders) {
  EXPECT_EQ(capability(model("bert", "BertModel")), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability(model("xlm-roberta", "XLMRobertaModel")), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability(model("bert", "BertForMaskedLM")), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability(model("new", "NewModel")), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability(model("mistral", "MistralModel")), "TEXT_EMBEDDINGS");  // E5-Mistral
  EXPECT_EQ(capability(model("qwen2", "Qwen2Model")), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability(model("nvembed", "NVEmbedModel")), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability(model("x", "SentenceTransformerModel")), "TEXT_EMBEDDINGS");
}

TEST(Capabilities, DecoderEmbeddersByIsCausalOrSentenceTransformers) {
  json gte = model("qwen2", "Qwen2ForCausalLM");
  EXPECT_EQ(capability(gte), "CHAT");
  gte["is_causal"] = false;
  EXPECT_EQ(capability(gte), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability(model("qwen3", "Qwen3ForCausalLM"), true), "TEXT_EMBEDDINGS");
  json causal_true = model("qwen2", "Qwen2ForCausalLM");
  causal_true["is_causal"] = true;
  EXPECT_EQ(capability(causal_true), "CHAT");
}

TEST(Capabilities, ClassifiersAndRewardModelsRerank) {
  EXPECT_EQ(capability(model("llama", "LlamaForSequenceClassification")), "TEXT_RERANK");
  EXPECT_EQ(capability(model("xlm-roberta", "XLMRobertaForSequenceClassification")), "TEXT_RERANK");
  EXPECT_EQ(capability(model("internlm2", "InternLM2ForRewardModel")), "TEXT_RERANK");
  EXPECT_EQ(capability(model("qwen2", "Qwen2ForRewardModel")), "TEXT_RERANK");
}

TEST(Capabilities, ArchitecturesOfOddShapes) {
  EXPECT_EQ(capability({{"model_type", "bert"}, {"architectures", "BertModel"}}), "TEXT_EMBEDDINGS");
  EXPECT_EQ(capability({{"model_type", "llama"}, {"architectures", json::array()}}), "CHAT");
  EXPECT_EQ(capability({{"model_type", "llama"}, {"architectures", {5}}}), "CHAT");
  EXPECT_EQ(capability({{"model_type", 3}, {"architectures", nullptr}, {"is_causal", "no"}}), "CHAT");
}
