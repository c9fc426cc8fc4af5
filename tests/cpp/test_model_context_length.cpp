#include <gtest/gtest.h>

#include "modelagent/model_metadata.hpp"

using namespace modelagent;
using nlohmann::json;

TEST(ContextLength, MaxPositionEmbeddingsFirst) {
  EXPECT_EQ(context_length({{"max_position_embeddings", 4096}, {"seq_length", 2048}}), 4096u);
}

TEST(ContextLength, FallbackKeysInOrder) {
  EXPECT_EQ(context_length({{"seq_length", 8192}, {"n_positions", 1024}}), 8192u);
  EXPECT_EQ(context_length({{"max_seq_len", 32768}, {"n_positions", 1024}}), 32768u);
  EXPECT_EQ(context_length({{"n_positions", 1024}, {"model_max_length", 512}}), 1024u);
  EXPECT_EQ(context_length({{"max_sequence_length", 2048}}), 2048u);  // ChatGLM-6B (v1)
  EXPECT_EQ(context_length({{"n_ctx", 2048}}), 2048u);
  EXPECT_EQ(context_length({{"model_max_length", 512}}), 512u);
}

TEST(ContextLength, NestedTextConfigForMultimodal) {
  EXPECT_EQ(context_length({{"text_config", {{"max_position_embeddings", 131072}}}}), 131072u);
  EXPECT_EQ(context_length({{"language_config", {{"max_position_embeddings", 16384}}}}), 16384u);
  EXPECT_EQ(context_length({{"llm_config", {{"max_position_embeddings", 32768}}}}), 32768u);
  // Root fields come first, in any of their spellings.
  EXPECT_EQ(context_length({{"seq_length", 4096}, {"text_config", {{"max_position_embeddings", 8192}}}}), 4096u);
}

TEST(ContextLength, BaichuanPrefersModelMaxLength) {
  EXPECT_EQ(context_length({{"model_type", "baichuan"}, {"max_position_embeddings", 4096}, {"model_max_length", 8192}}),
            8192u);
  EXPECT_EQ(context_length({{"model_type", "baichuan"}, {"max_position_embeddings", 4096}}), 4096u);
  EXPECT_EQ(context_length({{"model_type", "llama"}, {"max_position_embeddings", 4096}, {"model_max_length", 8192}}),
            4096u);
}

TEST(ContextLength, TensorRtLlmEngineUsesBuildLength) {
  json engine = {{"pretrained_config", {{"max_position_embeddings", 131072}}},
                 {"build_config", {{"max_seq_len", 8192}}}};
  EXPECT_EQ(context_length(engine), 8192u);
  engine.erase("build_config");
  EXPECT_EQ(context_length(engine), 131072u);
}

TEST(ContextLength, RopeScalingDoesNotChangeTheDeclaredLength) {
  EXPECT_EQ(context_length({{"max_position_embeddings", 32768},
                            {"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}}}}),
            32768u);
}

TEST(ContextLength, OddValuesAreSkipped) {
  EXPECT_EQ(context_length({{"max_position_embeddings", "4096"}, {"seq_length", 2048}}), 2048u);
  EXPECT_EQ(context_length({{"max_position_embeddings", -1}, {"seq_length", 0}, {"n_positions", 512}}), 512u);
  EXPECT_EQ(context_length({{"max_position_embeddings", 4096.0}}), 4096u);
  EXPECT_EQ(context_length({{"max_position_embeddings", 4096.5}}), 0u);
  EXPECT_EQ(context_length({{"max_position_embeddings", nullptr}, {"text_config", "x"}}), 0u);
  EXPECT_EQ(context_length({{"max_position_embeddings", 1e300}}), 0u);
  EXPECT_EQ(context_length(json::object()), 0u);
}
