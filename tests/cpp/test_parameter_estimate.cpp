// Parameter-count estimation from config.json: every fixture against its published (or hand-computed)
// count, exact component arithmetic on tiny synthetic configs, generic families from their published
// shapes, and hostile input. docs/parameter-counts.md has the table and the hand arithmetic.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "modelagent/parameter_estimate.hpp"

using modelagent::estimate_parameters;
using nlohmann::json;

namespace {

const std::string kConfigs = std::string(MODELAGENT_FIXTURES_DIR) + "/model-configs/";

json load(const std::string& name) {
  std::ifstream in(kConfigs + name);
  if (!in) {
    ADD_FAILURE() << "cannot open fixture " << kConfigs + name;
    return json::object();
  }
  return json::parse(in);
}

uint64_t estimate(const json& config) {
  const auto e = estimate_parameters(config);
  EXPECT_TRUE(e.has_value()) << config.dump().substr(0, 200);
  return e.value_or(0);
}

struct Published {
  const char* fixture;
  uint64_t count;
  bool exact;  // the cited figure is an exact element count (not a rounded one)
};

// Published or hand-computed true counts of the fixture models. Sources are spelled out beside each
// value; docs/parameter-counts.md repeats them with links and the hand arithmetic.
const Published kFixtures[] = {
    // hand-computed (card says only "7B"; repo ships .bin): 1,029,701,632 embed+head + 32 x 202,383,360 + 4,096
    {"baichuan2_7b.json", 7'505'973'248, true},
    // BERT-large shape; keras-hub preset bert_large_en_uncased "params": 335141888, equal to HF BertModel numel
    {"bge_large.json", 335'141'888, true},
    // model.num_parameters() of THUDM/chatglm3-6b as logged by users (6243584000 trainable); calflops README
    // lists chatglm2-6b (same shape) at 6243584000
    {"chatglm3_6b.json", 6'243'584'000, true},
    // open_clip docs/model_profile.csv: ViT-H-14 image_mparams 632.08 (tower + 1280x1024 projection)
    {"clip_vision_model.json", 632'080'000, false},
    // hand-computed (CohereForAI card: "35B"): 2,097,152,000 tied embed + 40 x 822,091,776 + 8,192
    {"command_r_35b.json", 34'980'831'232, true},
    // hand-computed for THIS fixture (48 layers, 12 kv heads, vocab 100280 -- not DBRX's published shape,
    // see the RealDbrx test for the published 132B): 48 x 3,265,376,256 + 1,232,240,640 + 6,144
    {"dbrx_132b.json", 157'970'307'072, true},
    // HF API safetensors.total of deepseek-ai/DeepSeek-V3 = 684531386000 (671B main + 14B MTP; includes
    // 41.5M float32 FP8 scale tensors that are not model weights); README: "685B"
    {"deepseek_v3.json", 684'531'386'000, false},
    // hand-computed from DeepSeek-VL2 code: LM 2,934,734,080 + SigLIP-so400m 428,225,600 + projector
    // 7,539,200 + 2 x 1,280 separators (open_clip lists ViT-SO400M-14-SigLIP-384 image 428.23M)
    {"deepseek_vl2_tiny.json", 3'370'501'440, true},
    // mteb ModelMeta n_parameters=7110660096 (E5-Mistral MistralModel, no LM head)
    {"e5_mistral_7b.json", 7'110'660'096, true},
    // hand-computed (card/report: "7.8B"): 838,860,800 embed+head + 32 x 218,112,000 + 4,096
    {"exaone_7.8b.json", 7'818'448'896, true},
    // sum(p.numel()) of google/gemma-2-2b asserted by several projects; keras-hub gemma2_2b params
    {"gemma_2_2b.json", 2'614'341'888, true},
    {"gemma_2_2b_it.json", 2'614'341'888, true},
    // HF API safetensors.total for google/gemma-2-9b = 9241705984; keras-hub gemma2_9b_en params
    {"gemma_2_9b.json", 9'241'705'984, true},
    // GLM-4 composite demo banner "9399951360 (9.4B) parameters"; num_parameters() log of glm-4-9b-chat
    {"glm4_9b.json", 9'399'951'360, true},
    // mteb ModelMeta gte-Qwen2-7B-instruct n_parameters=7_613_000_000 (LM head included)
    {"gte_qwen2_7b.json", 7'613'000'000, false},
    // HF safetensors metadata of internlm2_5-7b-chat (7737708544); a header audit of an InternLM2 checkpoint
    // found 227 tensors / 7737708544 elements
    {"internlm2_7b.json", 7'737'708'544, true},
    // hand-computed: InternLM2-7B minus the 379,060,224 output layer plus the 4,096 v_head
    {"internlm2_reward.json", 7'358'652'416, true},
    // hand-computed (repo ships .bin): LLM 1,652,656,128 + SigLIP-L 316,283,904 + aligners 10,510,336 +
    // gen head 37,767,168 + gen embed 131,072 + VQ-16 71,883,403
    {"janus_1.3b.json", 2'089'232'011, true},
    // shard-header audit of moonshotai/Kimi-K2-Instruct: 1026408232448 logical parameters (card: "1T")
    {"kimi_k2_instruct.json", 1'026'408'232'448, true},
    // HF API safetensors.total of meta-llama Llama-3/3.1-70B = 70553706496
    {"llama3.json", 70'553'706'496, true},
    {"llama3_1.json", 70'553'706'496, true},
    // HF safetensors count of meta-llama/Llama-3.1-405B = 405853388800
    {"llama3_1_405b.json", 405'853'388'800, true},
    // HF safetensors metadata of Llama-3.2-11B-Vision-Instruct = 10670220835
    {"llama3_2_11b_vision.json", 10'670'220'835, true},
    {"llama3_2_1b.json", 1'235'814'400, true},  // HF safetensors of Llama-3.2-1B(-Instruct)
    {"llama3_2_3b.json", 3'212'749'824, true},  // HF safetensors.parameters.BF16 of Llama-3.2-3B-Instruct
    // Meta model card table: "90B (88.8)"
    {"llama3_2_90b_vision.json", 88'800'000'000, false},
    // parameter count of Llama 4 Maverick = 401583781376 (Fireworks model listing; card: "400B total")
    {"llama4.json", 401'583'781'376, true},
    // HF safetensors of meta-llama/Llama-4-Scout-17B-16E-Instruct = 108641793536 (card: "109B total")
    {"llama4_scout_17b_16e.json", 108'641'793'536, true},
    // count_parameters(LlavaForConditionalGeneration(llava-hf/llava-1.5-7b-hf config)) == 7063427072
    {"llava_1.5_7b_hf.json", 7'063'427'072, true},
    // liuhaotian/llava-v1.5-7b loaded by LLaVA's builder: 6759395328 parameters besides the CLIP tower,
    // which is fetched from openai/clip-vit-large-patch14-336 and is not in the repo
    {"llava_v1.5_7b.json", 6'759'395'328, true},
    // hand-computed (card: "4B"): 188,026,880 tied embed + 62 x 62,674,944 + 2,560
    {"minicpm3_4b.json", 4'073'875'968, true},
    {"mistral.json", 7'110'660'096, true},  // same content as e5_mistral_7b.json (mteb n_parameters)
    // GGUF general.parameter_count of Mistral-7B-Instruct = 7241732096 (HF: 7.24B)
    {"mistral_7b_instruct.json", 7'241'732'096, true},
    // HF API safetensors.total of mistralai/Mixtral-8x7B-Instruct-v0.1 = 46702792704
    {"mixtral.json", 46'702'792'704, true},
    // HF safetensors metadata (get_safetensors_metadata) of Phi-3.5-vision-instruct, same architecture as
    // Phi-3-vision-128k-instruct = 4146621440; mteb lists 4146621440 too
    {"phi3_v.json", 4'146'621'440, true},
    // HF safetensors metadata of the Qwen2.5 instruct repos (gimmick benchmark get_model_sizes())
    {"qwen2.5_0.5b.json", 494'032'768, true},
    {"qwen2.5_1.5b.json", 1'543'714'304, true},
    {"qwen2.5_3b.json", 3'085'938'688, true},      // index total_size 6171877376 bytes / 2
    {"qwen2.5_7b.json", 7'615'616'512, true},      // index total_size 15231233024 bytes / 2
    {"qwen2.5_14b.json", 14'770'033'664, true},    // GGUF general.parameter_count of Qwen2.5-14B-Instruct
    {"qwen2.5_32b.json", 32'763'876'352, true},
    {"qwen2.5_72b.json", 72'706'203'648, true},
    // print_model() of the CodeQwen1.5-7B-shaped Qwen2ForCausalLM (vocab 92416): "all params:7250284544"
    {"qwen2_7b.json", 7'250'284'544, true},
    // HF safetensors metadata of Qwen2-VL-2B/7B-Instruct
    {"qwen2_vl_2b.json", 2'208'985'600, true},
    {"qwen2_vl_7b.json", 8'291'375'616, true},
    // HF page of Skywork-Reward-Llama-3.1-8B-v0.2: "7.5B" (LlamaForSequenceClassification, 1 label)
    {"skywork_reward_llama.json", 7'500'000'000, false},
    // sum(p.numel()) == 1711376384 asserted for SmolLM2-1.7B, the same shape as SmolLM-1.7B
    {"smollm_1.7b.json", 1'711'376'384, true},
    // stabilityai/stablelm-3b-4e1t model card: "Parameters 2,795,443,200"
    {"stablelm_3b.json", 2'795'443'200, true},
    // hand-computed (card: "70 亿"/7B; repo ships .bin): 823,574,528 embed+head + 32 x 202,383,360 + 4,096
    {"xverse_7b.json", 7'299'846'144, true},
};

TEST(ParameterEstimateFixtures, WithinTwoPercentOfPublishedCount) {
  for (const Published& p : kFixtures) {
    SCOPED_TRACE(p.fixture);
    const uint64_t got = estimate(load(p.fixture));
    const double want = static_cast<double>(p.count);
    EXPECT_NEAR(static_cast<double>(got), want, want * 0.02);
    if (p.exact) EXPECT_EQ(got, p.count);
  }
}

TEST(ParameterEstimateFixtures, EveryFixtureIsCovered) {
  std::vector<std::string> listed;
  for (const Published& p : kFixtures) listed.emplace_back(p.fixture);
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kConfigs)) {
    if (entry.path().extension() != ".json") continue;
    ++seen;
    const std::string name = entry.path().filename().string();
    EXPECT_NE(std::find(listed.begin(), listed.end(), name), listed.end()) << "fixture without a cited count: " << name;
  }
  EXPECT_EQ(seen, static_cast<int>(listed.size()));
}

// The tiny Phi fixture ships real weights: its safetensors header is the ground truth.
uint64_t count_safetensors_elements(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t len_bytes[8] = {};
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  std::string header(len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(len));
  const json parsed = json::parse(header);
  uint64_t total = 0;
  for (const auto& [name, tensor] : parsed.items()) {
    if (name == "__metadata__") continue;
    uint64_t n = 1;
    for (const auto& d : tensor.at("shape")) n *= d.get<uint64_t>();
    total += n;
  }
  return total;
}

TEST(ParameterEstimateFixtures, TinyRandomPhiMatchesItsSafetensorsExactly) {
  const std::string dir = kConfigs + "tiny-random-PhiModel/";
  const uint64_t from_header = count_safetensors_elements(dir + "model-1-of-2.safetensors");
  EXPECT_EQ(from_header, 46'282u);  // one shard; the second is a byte-identical copy
  EXPECT_EQ(estimate(load("tiny-random-PhiModel/config.json")), from_header);
}

// ---- Exact component arithmetic on tiny synthetic configs --------------------------------------------------

// hidden 8, 2 layers, 2 heads of 4, 1 kv head, intermediate 16, vocab 10:
// embed 80; attention q 64 + k 32 + v 32 + o 64 = 192; gated MLP 3 x 8 x 16 = 384; two RMSNorms 16;
// per layer 592; final norm 8; LM head 80.
json tiny_llama() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", 8},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 1},
          {"intermediate_size", 16},
          {"vocab_size", 10},
          {"tie_word_embeddings", false}};
}

TEST(ParameterEstimateComponents, TinyLlamaUntied) { EXPECT_EQ(estimate(tiny_llama()), 80u + 2 * 592 + 8 + 80); }

TEST(ParameterEstimateComponents, TiedEmbeddingsCountOnce) {
  json c = tiny_llama();
  c["tie_word_embeddings"] = true;
  EXPECT_EQ(estimate(c), 80u + 2 * 592 + 8);
}

TEST(ParameterEstimateComponents, MissingTieFlagFollowsTheFamilyDefault) {
  json llama = tiny_llama();
  llama.erase("tie_word_embeddings");
  EXPECT_EQ(estimate(llama), 1352u);  // LlamaConfig defaults to untied
  json gemma = tiny_llama();
  gemma.erase("tie_word_embeddings");
  gemma["model_type"] = "gemma";
  EXPECT_EQ(estimate(gemma), 1272u);  // GemmaConfig defaults to tied
}

TEST(ParameterEstimateComponents, BareBackboneHasNoHead) {
  json c = tiny_llama();
  c["architectures"] = {"LlamaModel"};
  EXPECT_EQ(estimate(c), 1272u);
}

TEST(ParameterEstimateComponents, SequenceClassificationHeadUsesLabelCount) {
  json c = tiny_llama();
  c["architectures"] = {"LlamaForSequenceClassification"};
  c["id2label"] = {{"0", "a"}, {"1", "b"}, {"2", "c"}};
  EXPECT_EQ(estimate(c), 1272u + 8 * 3);
}

TEST(ParameterEstimateComponents, RewardModelValueHead) {
  json c = tiny_llama();
  c["model_type"] = "internlm2";
  c["architectures"] = {"InternLM2ForRewardModel"};
  EXPECT_EQ(estimate(c), 1272u + 8);
}

TEST(ParameterEstimateComponents, AttentionAndMlpBiases) {
  json c = tiny_llama();
  c["attention_bias"] = true;  // q 8 + k 4 + v 4 + o 8 per layer
  EXPECT_EQ(estimate(c), 1352u + 2 * 24);
  c["attention_bias"] = false;
  c["mlp_bias"] = true;  // gate 16 + up 16 + down 8 per layer
  EXPECT_EQ(estimate(c), 1352u + 2 * 40);
}

TEST(ParameterEstimateComponents, ExplicitHeadDimOverridesHiddenOverHeads) {
  json c = tiny_llama();
  c["head_dim"] = 8;  // q 8x16, k/v 8x8, o 16x8 = 384 per layer
  EXPECT_EQ(estimate(c), 80u + 2 * (384 + 384 + 16) + 8 + 80);
}

TEST(ParameterEstimateComponents, FamilyLayouts) {
  json qwen2 = tiny_llama();
  qwen2["model_type"] = "qwen2";  // q/k/v biases: 8 + 4 + 4 per layer
  EXPECT_EQ(estimate(qwen2), 1352u + 2 * 16);

  json qwen3 = tiny_llama();
  qwen3["model_type"] = "qwen3";  // q_norm and k_norm of head_dim 4
  EXPECT_EQ(estimate(qwen3), 1352u + 2 * 8);

  json gemma2 = tiny_llama();
  gemma2["model_type"] = "gemma2";  // four norms per layer
  EXPECT_EQ(estimate(gemma2), 1352u + 2 * 16);

  json cohere = tiny_llama();
  cohere["model_type"] = "cohere";  // one norm per layer (parallel block)
  EXPECT_EQ(estimate(cohere), 1352u - 2 * 8);

  json olmo2 = tiny_llama();
  olmo2["model_type"] = "olmo2";  // q_norm over 2 x 4, k_norm over 1 x 4
  EXPECT_EQ(estimate(olmo2), 1352u + 2 * 12);

  json granite = tiny_llama();
  granite["model_type"] = "granite";  // llama layout
  EXPECT_EQ(estimate(granite), 1352u);
}

TEST(ParameterEstimateComponents, PhiLayoutHasBiasesEverywhere) {
  // 2 heads of 4, no GQA: q/k/v/dense 4 x (64 + 8) = 288; fc1 8x16+16, fc2 16x8+8 = 280; one LayerNorm 16;
  // per layer 584; embed 80; final LayerNorm 16; lm_head 80 + 10 bias.
  const json phi = {{"architectures", {"PhiForCausalLM"}},
                    {"model_type", "phi"},
                    {"hidden_size", 8},
                    {"num_hidden_layers", 2},
                    {"num_attention_heads", 2},
                    {"intermediate_size", 16},
                    {"vocab_size", 10},
                    {"tie_word_embeddings", false}};
  EXPECT_EQ(estimate(phi), 80u + 2 * 584 + 16 + 90);
}

TEST(ParameterEstimateComponents, StableLmParallelResidualHasOneNorm) {
  json c = tiny_llama();
  c["model_type"] = "stablelm";  // LayerNorms with bias: 2 x 16 per layer, final 16
  EXPECT_EQ(estimate(c), 80u + 2 * (192 + 384 + 32) + 16 + 80);
  c["use_parallel_residual"] = true;
  EXPECT_EQ(estimate(c), 80u + 2 * (192 + 384 + 16) + 16 + 80);
}

TEST(ParameterEstimateComponents, Gpt2FieldNamesAndLearnedPositions) {
  // n_embd 8, n_layer 2, n_head 2, n_positions 5, n_inner null (4 x 8): wte 80 + wpe 40;
  // attention 4 x (64 + 8) = 288; MLP 8x32+32 + 32x8+8 = 552; two LayerNorms 32; ln_f 16; tied head.
  const json gpt2 = {{"architectures", {"GPT2LMHeadModel"}},
                     {"model_type", "gpt2"},
                     {"n_embd", 8},
                     {"n_layer", 2},
                     {"n_head", 2},
                     {"n_positions", 5},
                     {"n_inner", nullptr},
                     {"vocab_size", 10}};
  EXPECT_EQ(estimate(gpt2), 80u + 40 + 2 * (288 + 552 + 32) + 16);
}

TEST(ParameterEstimateComponents, MixtureOfExpertsAllLayers) {
  json c = tiny_llama();
  c["model_type"] = "mixtral";
  c["num_local_experts"] = 4;  // 4 x 384 experts + 8 x 4 router per layer
  EXPECT_EQ(estimate(c), 80u + 2 * (192 + 4 * 384 + 32 + 16) + 8 + 80);
}

json tiny_deepseek() {
  // 3 layers, first dense; MLA with q_lora 4, kv_lora 4, nope 2, rope 2, v 2, 2 heads:
  // q_a 32 + q_norm 4 + q_b 4x8=32; kv_a 8x6=48 + kv_norm 4 + kv_b 4x8=32; o 4x8=32 -> 184.
  // MoE: 4 experts x 96 + shared 96 + router 32 + correction bias 4 = 516. Dense MLP 384. Norms 16.
  return {{"architectures", {"DeepseekV3ForCausalLM"}},
          {"model_type", "deepseek_v3"},
          {"hidden_size", 8},
          {"num_hidden_layers", 3},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 2},
          {"intermediate_size", 16},
          {"moe_intermediate_size", 4},
          {"n_routed_experts", 4},
          {"n_shared_experts", 1},
          {"first_k_dense_replace", 1},
          {"moe_layer_freq", 1},
          {"q_lora_rank", 4},
          {"kv_lora_rank", 4},
          {"qk_nope_head_dim", 2},
          {"qk_rope_head_dim", 2},
          {"v_head_dim", 2},
          {"topk_method", "noaux_tc"},
          {"num_nextn_predict_layers", 0},
          {"vocab_size", 10},
          {"tie_word_embeddings", false}};
}

TEST(ParameterEstimateComponents, DeepSeekLatentAttentionSharedExpertsAndDenseLead) {
  EXPECT_EQ(estimate(tiny_deepseek()), 80u + (184 + 384 + 16) + 2 * (184 + 516 + 16) + 8 + 80);
}

TEST(ParameterEstimateComponents, DeepSeekWithoutQLoraUsesPlainQueryProjection) {
  json c = tiny_deepseek();
  c["q_lora_rank"] = nullptr;  // q_proj 8 x 8 = 64 instead of 68
  EXPECT_EQ(estimate(c), 2184u - 3 * 4);
}

TEST(ParameterEstimateComponents, MtpModulesCountWithTheirEmbeddingAndHeadCopies) {
  json c = tiny_deepseek();
  c["num_nextn_predict_layers"] = 1;
  // one MoE decoder block 716 + enorm/hnorm/head norm 24 + eh_proj 2x8x8 128 + embed and head copies 160
  EXPECT_EQ(estimate(c), 2184u + 716 + 24 + 128 + 160);
}

TEST(ParameterEstimateComponents, Llama4InterleavedMoeWithSharedExpert) {
  // 4 layers, step 2 -> layers 1 and 3 are MoE: 2 experts x 3x8x4 + router 16 + shared 96 = 304;
  // the others use intermediate_size_mlp 16 (384). Attention 192, norms 16.
  const json c = {{"architectures", {"Llama4ForCausalLM"}},
                  {"model_type", "llama4_text"},
                  {"hidden_size", 8},
                  {"num_hidden_layers", 4},
                  {"num_attention_heads", 2},
                  {"num_key_value_heads", 1},
                  {"head_dim", 4},
                  {"intermediate_size", 4},
                  {"intermediate_size_mlp", 16},
                  {"num_local_experts", 2},
                  {"interleave_moe_layer_step", 2},
                  {"vocab_size", 10},
                  {"tie_word_embeddings", false}};
  EXPECT_EQ(estimate(c), 80u + 4 * (192 + 16) + 2 * 304 + 2 * 384 + 8 + 80);
}

TEST(ParameterEstimateComponents, QwenMoeSparseStepMlpOnlyLayersAndGatedSharedExpert) {
  // 4 layers, sparse when (i+1) % 2 == 0 -> 1 and 3; layer 1 forced dense -> one MoE layer:
  // 2 experts x 96 + router 16 + shared expert 3x8x8 192 + its gate 8 = 408. qkv bias: attention 208.
  const json c = {{"architectures", {"Qwen2MoeForCausalLM"}},
                  {"model_type", "qwen2_moe"},
                  {"hidden_size", 8},
                  {"num_hidden_layers", 4},
                  {"num_attention_heads", 2},
                  {"num_key_value_heads", 1},
                  {"intermediate_size", 16},
                  {"moe_intermediate_size", 4},
                  {"shared_expert_intermediate_size", 8},
                  {"num_experts", 2},
                  {"decoder_sparse_step", 2},
                  {"mlp_only_layers", {1}},
                  {"vocab_size", 10},
                  {"tie_word_embeddings", false}};
  EXPECT_EQ(estimate(c), 80u + 4 * (208 + 16) + 3 * 384 + 408 + 8 + 80);
}

TEST(ParameterEstimateComponents, ChatGlmMultiQueryGroups) {
  // qkv 8 x (8 + 2x1x4) + 16 bias = 144; dense 64; h_to_4h 8x32 = 256; 4h_to_h 128; two RMSNorms 16.
  const json c = {{"architectures", {"ChatGLMModel"}},
                  {"model_type", "chatglm"},
                  {"hidden_size", 8},
                  {"num_layers", 2},
                  {"num_attention_heads", 2},
                  {"kv_channels", 4},
                  {"multi_query_attention", true},
                  {"multi_query_group_num", 1},
                  {"ffn_hidden_size", 16},
                  {"padded_vocab_size", 10},
                  {"add_qkv_bias", true},
                  {"add_bias_linear", false},
                  {"rmsnorm", true},
                  {"post_layer_norm", true}};
  EXPECT_EQ(estimate(c), 80u + 2 * (144 + 64 + 256 + 128 + 16) + 8 + 80);
}

TEST(ParameterEstimateComponents, DbrxFfnConfig) {
  // Wqkv 8 x (8 + 2x4) = 128, out 64; experts 2 x 3 x 16 x 8 = 768; router 16; two norms 16.
  const json c = {{"architectures", {"DbrxForCausalLM"}},
                  {"model_type", "dbrx"},
                  {"d_model", 8},
                  {"n_layers", 2},
                  {"n_heads", 2},
                  {"attn_config", {{"kv_n_heads", 1}}},
                  {"ffn_config", {{"ffn_hidden_size", 16}, {"moe_num_experts", 2}}},
                  {"vocab_size", 10}};
  EXPECT_EQ(estimate(c), 80u + 2 * (192 + 768 + 16 + 16) + 8 + 80);
}

TEST(ParameterEstimateComponents, BertEmbeddingsAndPooler) {
  // (10 + 5 + 2) x 8 embeddings + LayerNorm 16; layer 4 x 72 + 144 + 136 + 32 = 600; pooler 72.
  const json c = {{"architectures", {"BertModel"}},
                  {"model_type", "bert"},
                  {"hidden_size", 8},
                  {"num_hidden_layers", 2},
                  {"intermediate_size", 16},
                  {"vocab_size", 10},
                  {"max_position_embeddings", 5},
                  {"type_vocab_size", 2}};
  EXPECT_EQ(estimate(c), 136u + 16 + 2 * 600 + 72);
}

TEST(ParameterEstimateComponents, ClipVisionTowerAndProjection) {
  // class 8; patch conv 3x2x2x8 = 96; positions (2x2+1) x 8 = 40; pre+post LayerNorm 32; layers 2 x 600.
  json c = {{"architectures", {"CLIPVisionModel"}},
            {"model_type", "clip_vision_model"},
            {"hidden_size", 8},
            {"intermediate_size", 16},
            {"num_hidden_layers", 2},
            {"patch_size", 2},
            {"image_size", 4},
            {"projection_dim", 4}};
  EXPECT_EQ(estimate(c), 8u + 96 + 40 + 32 + 1200);
  c["architectures"] = {"CLIPVisionModelWithProjection"};
  EXPECT_EQ(estimate(c), 1376u + 32);
}

TEST(ParameterEstimateComponents, LlavaNestedTextConfigTakesLlamaDefaults) {
  // llava-hf's text_config omits every field equal to LlamaConfig's defaults; those must be filled in.
  json full = load("llava_1.5_7b_hf.json");
  json explicit_text = full;
  explicit_text["text_config"].update({{"hidden_size", 4096},
                                       {"intermediate_size", 11008},
                                       {"num_hidden_layers", 32},
                                       {"num_attention_heads", 32}});
  EXPECT_EQ(estimate(full), estimate(explicit_text));
  explicit_text["text_config"]["num_hidden_layers"] = 31;  // and the nested fields are really used
  EXPECT_LT(estimate(explicit_text), estimate(full));
}

// ---- Families not in the fixtures, from their published shapes ----------------------------------------

struct Family {
  const char* name;
  json config;
  uint64_t published;
};

TEST(ParameterEstimateGenericFamilies, MatchPublishedCounts) {
  const std::vector<Family> families = {
      // HF API safetensors {"total":8190735360} for Qwen/Qwen3-8B
      {"qwen3-8b",
       {{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"hidden_size", 4096},
        {"intermediate_size", 12288}, {"num_hidden_layers", 36}, {"num_attention_heads", 32},
        {"num_key_value_heads", 8}, {"head_dim", 128}, {"vocab_size", 151936}, {"tie_word_embeddings", false}},
       8'190'735'360},
      // GGUF general.parameter_count of Qwen3-30B-A3B = 30532122624 (card: 30.5B total, 3.3B active)
      {"qwen3-30b-a3b",
       {{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}, {"hidden_size", 2048},
        {"intermediate_size", 6144}, {"moe_intermediate_size", 768}, {"num_experts", 128},
        {"num_experts_per_tok", 8}, {"decoder_sparse_step", 1}, {"mlp_only_layers", json::array()},
        {"num_hidden_layers", 48}, {"num_attention_heads", 32}, {"num_key_value_heads", 4}, {"head_dim", 128},
        {"vocab_size", 151936}, {"tie_word_embeddings", false}},
       30'532'122'624},
      // HF API safetensors {"total":999885952} for google/gemma-3-1b-it
      {"gemma-3-1b",
       {{"architectures", {"Gemma3ForCausalLM"}}, {"model_type", "gemma3_text"}, {"hidden_size", 1152},
        {"intermediate_size", 6912}, {"num_hidden_layers", 26}, {"num_attention_heads", 4},
        {"num_key_value_heads", 1}, {"head_dim", 256}, {"vocab_size", 262144}},
       999'885'952},
      // HF safetensors of google/gemma-3-4b-it = 4300079472; its text_config omits Gemma3TextConfig defaults
      {"gemma-3-4b",
       {{"architectures", {"Gemma3ForConditionalGeneration"}}, {"model_type", "gemma3"},
        {"text_config",
         {{"hidden_size", 2560}, {"intermediate_size", 10240}, {"model_type", "gemma3_text"},
          {"num_hidden_layers", 34}, {"sliding_window", 1024}}},
        {"vision_config",
         {{"hidden_size", 1152}, {"image_size", 896}, {"intermediate_size", 4304},
          {"model_type", "siglip_vision_model"}, {"num_attention_heads", 16}, {"num_hidden_layers", 27},
          {"patch_size", 14}, {"vision_use_head", false}}}},
       4'300'079'472},
      // HF safetensors of microsoft/Phi-3.5-mini-instruct = 3821079552 (gimmick get_model_sizes())
      {"phi-3-mini",
       {{"architectures", {"Phi3ForCausalLM"}}, {"model_type", "phi3"}, {"hidden_size", 3072},
        {"intermediate_size", 8192}, {"num_hidden_layers", 32}, {"num_attention_heads", 32},
        {"num_key_value_heads", 32}, {"vocab_size", 32064}, {"tie_word_embeddings", false}},
       3'821'079'552},
      // ollama/GGUF parameter_size of gpt-oss:20b = 20914757184 (card: 21B total, 3.6B active)
      {"gpt-oss-20b",
       {{"architectures", {"GptOssForCausalLM"}}, {"model_type", "gpt_oss"}, {"hidden_size", 2880},
        {"intermediate_size", 2880}, {"num_hidden_layers", 24}, {"num_attention_heads", 64},
        {"num_key_value_heads", 8}, {"head_dim", 64}, {"num_local_experts", 32}, {"num_experts_per_tok", 4},
        {"vocab_size", 201088}, {"tie_word_embeddings", false}, {"attention_bias", true}},
       20'914'757'184},
      // ollama/GGUF parameter_size of gpt-oss:120b = 116829156672 (card: 117B)
      {"gpt-oss-120b",
       {{"architectures", {"GptOssForCausalLM"}}, {"model_type", "gpt_oss"}, {"hidden_size", 2880},
        {"intermediate_size", 2880}, {"num_hidden_layers", 36}, {"num_attention_heads", 64},
        {"num_key_value_heads", 8}, {"head_dim", 64}, {"num_local_experts", 128}, {"num_experts_per_tok", 4},
        {"vocab_size", 201088}, {"tie_word_embeddings", false}, {"attention_bias", true}},
       116'829'156'672},
      // HF safetensors total of deepseek-ai/DeepSeek-V2-Lite = 15706484224 (card: 15.7B)
      {"deepseek-v2-lite",
       {{"architectures", {"DeepseekV2ForCausalLM"}}, {"model_type", "deepseek_v2"}, {"hidden_size", 2048},
        {"intermediate_size", 10944}, {"moe_intermediate_size", 1408}, {"num_hidden_layers", 27},
        {"num_attention_heads", 16}, {"num_key_value_heads", 16}, {"n_routed_experts", 64},
        {"n_shared_experts", 2}, {"first_k_dense_replace", 1}, {"moe_layer_freq", 1}, {"kv_lora_rank", 512},
        {"q_lora_rank", nullptr}, {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64}, {"v_head_dim", 128},
        {"vocab_size", 102400}, {"tie_word_embeddings", false}, {"topk_method", "greedy"}},
       15'706'484'224},
      // HF safetensors total of deepseek-ai/DeepSeek-V2 = 235741434880 (card: 236B)
      {"deepseek-v2",
       {{"architectures", {"DeepseekV2ForCausalLM"}}, {"model_type", "deepseek_v2"}, {"hidden_size", 5120},
        {"intermediate_size", 12288}, {"moe_intermediate_size", 1536}, {"num_hidden_layers", 60},
        {"num_attention_heads", 128}, {"num_key_value_heads", 128}, {"n_routed_experts", 160},
        {"n_shared_experts", 2}, {"first_k_dense_replace", 1}, {"moe_layer_freq", 1}, {"kv_lora_rank", 512},
        {"q_lora_rank", 1536}, {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64}, {"v_head_dim", 128},
        {"vocab_size", 102400}, {"tie_word_embeddings", false}, {"topk_method", "group_limited_greedy"}},
       235'741'434'880},
      // HF API safetensors {"total":7298617344} for allenai/OLMo-2-1124-7B
      {"olmo2-7b",
       {{"architectures", {"Olmo2ForCausalLM"}}, {"model_type", "olmo2"}, {"hidden_size", 4096},
        {"intermediate_size", 11008}, {"num_hidden_layers", 32}, {"num_attention_heads", 32},
        {"num_key_value_heads", 32}, {"vocab_size", 100352}, {"tie_word_embeddings", false}},
       7'298'617'344},
      // DBRX model card: "132B total parameters" (published shape: 40 layers, 8 kv heads, vocab 100352)
      {"dbrx (published shape)",
       {{"architectures", {"DbrxForCausalLM"}}, {"model_type", "dbrx"}, {"d_model", 6144}, {"n_layers", 40},
        {"n_heads", 48}, {"vocab_size", 100352}, {"tie_word_embeddings", false},
        {"attn_config", {{"kv_n_heads", 8}}},
        {"ffn_config", {{"ffn_hidden_size", 10752}, {"moe_num_experts", 16}, {"moe_top_k", 4}}}},
       132'000'000'000},
      // GPT2LMHeadModel "all params:124439808"
      {"gpt2",
       {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"n_embd", 768}, {"n_layer", 12},
        {"n_head", 12}, {"n_positions", 1024}, {"n_inner", nullptr}, {"vocab_size", 50257}},
       124'439'808},
      // keras-hub bert-base 109482240 = BertModel('bert-base-uncased') numel
      {"bert-base-uncased",
       {{"architectures", {"BertModel"}}, {"model_type", "bert"}, {"hidden_size", 768},
        {"num_hidden_layers", 12}, {"intermediate_size", 3072}, {"vocab_size", 30522},
        {"max_position_embeddings", 512}, {"type_vocab_size", 2}},
       109'482'240},
  };
  for (const Family& f : families) {
    SCOPED_TRACE(f.name);
    const double want = static_cast<double>(f.published);
    EXPECT_NEAR(static_cast<double>(estimate(f.config)), want, want * 0.02);
  }
}

TEST(ParameterEstimateGenericFamilies, UnknownDecoderTypeWithCommonFieldsStillEstimates) {
  json c = tiny_llama();
  c["model_type"] = "some_future_model";
  c["architectures"] = {"SomeFutureModelForCausalLM"};
  EXPECT_EQ(estimate(c), 1352u);
}

TEST(ParameterEstimateGenericFamilies, TextConfigNestingAndLanguageConfigNesting) {
  const json text = tiny_llama();
  const json wrapped = {{"model_type", "some_vlm_text_only"}, {"text_config", text}};
  EXPECT_EQ(estimate(wrapped), 1352u);
  const json language = {{"model_type", "some_other"}, {"language_config", text}};
  EXPECT_EQ(estimate(language), 1352u);
}

TEST(ParameterEstimateGenericFamilies, FamilyFromArchitectureWhenModelTypeIsMissing) {
  // TensorRT-LLM pretrained_config style: no model_type, no tie flag, head_size, nested "moe".
  json trt = {{"architectures", {"LlamaForCausalLM"}},
              {"hidden_size", 8},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 2},
              {"num_key_value_heads", 1},
              {"head_size", 4},
              {"intermediate_size", 16},
              {"vocab_size", 10}};
  EXPECT_EQ(estimate(trt), 1352u);  // llama: untied by default
  trt["architectures"] = {"GemmaForCausalLM"};
  EXPECT_EQ(estimate(trt), 1272u);  // gemma: tied by default
  trt["architectures"] = {"MixtralForCausalLM"};
  trt["moe"] = {{"num_experts", 4}, {"top_k", 2}};
  EXPECT_EQ(estimate(trt), 3720u);  // same as the tiny mixtral
  trt["architectures"] = {"Qwen2MoeForCausalLM"};
  trt["moe"] = {{"num_experts", 4}, {"shared_expert_intermediate_size", 8}};
  // q/k/v biases 16 per layer; shared expert 3x8x8 + its gate 8 per layer
  EXPECT_EQ(estimate(trt), 3720u + 2 * (16 + 192 + 8));
}

TEST(ParameterEstimateGenericFamilies, UnknownWrapperWithViTVisionConfig) {
  json c = {{"model_type", "some_vlm"},
            {"text_config", tiny_llama()},
            {"vision_config",
             {{"hidden_size", 8}, {"intermediate_size", 16}, {"num_hidden_layers", 2}, {"patch_size", 2},
              {"image_size", 4}}}};
  // text 1352 + CLIP-shaped tower 1376 + projector 8x8+8 twice
  EXPECT_EQ(estimate(c), 1352u + 1376 + 2 * 72);
  c["vision_config"] = json::object();  // nothing to size the tower from
  EXPECT_FALSE(estimate_parameters(c));
}

// ---- Odd and hostile input -----------------------------------------------------------------------------

TEST(ParameterEstimateOddInput, MissingRequiredFieldsGiveNullopt) {
  EXPECT_FALSE(estimate_parameters(json::object()));
  for (const char* key : {"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"}) {
    json c = tiny_llama();
    c.erase(key);
    EXPECT_FALSE(estimate_parameters(c)) << key;
  }
}

TEST(ParameterEstimateOddInput, NonObjectsGiveNullopt) {
  for (const json& j : {json(nullptr), json(42), json("config"), json::array({1, 2}), json(true)})
    EXPECT_FALSE(estimate_parameters(j)) << j.dump();
}

TEST(ParameterEstimateOddInput, WrongTypesNegativesAndFractionsGiveNullopt) {
  const std::vector<std::pair<const char*, json>> bad = {
      {"hidden_size", "4096"},          {"hidden_size", -8},           {"hidden_size", 8.5},
      {"hidden_size", json::array()},   {"num_hidden_layers", true},   {"num_key_value_heads", -1},
      {"intermediate_size", {16, 16}},  {"vocab_size", json::object()}, {"tie_word_embeddings", "yes"},
      {"hidden_size", 0},               {"num_attention_heads", 0},    {"head_dim", "4"},
  };
  for (const auto& [key, value] : bad) {
    json c = tiny_llama();
    c[key] = value;
    EXPECT_FALSE(estimate_parameters(c)) << key << "=" << value.dump();
  }
}

TEST(ParameterEstimateOddInput, IntegralFloatsAreAcceptedAndNullMeansAbsent) {
  json c = tiny_llama();
  c["hidden_size"] = 8.0;
  EXPECT_EQ(estimate(c), 1352u);
  c["num_key_value_heads"] = nullptr;  // absent: as many kv heads as heads (k, v become 8x8)
  EXPECT_EQ(estimate(c), 1352u + 2 * 64);
}

TEST(ParameterEstimateOddInput, EnormousValuesNeverWrap) {
  const std::vector<std::pair<const char*, json>> huge = {
      {"hidden_size", 1e300},
      {"hidden_size", uint64_t{1} << 62},
      {"vocab_size", UINT64_MAX},
      {"num_hidden_layers", uint64_t{1'000'000'000'000'000'000}},
      {"intermediate_size", uint64_t{1} << 63},
      {"num_attention_heads", 9e15},
  };
  for (const auto& [key, value] : huge) {
    json c = tiny_llama();
    c[key] = value;
    std::optional<uint64_t> e;
    EXPECT_NO_THROW(e = estimate_parameters(c)) << key;
    // Either refused or a genuine (non-wrapped) count: a wrapped product would come out smaller than the
    // untouched tiny model.
    if (e) {
      EXPECT_GT(*e, 1352u) << key;
      EXPECT_LT(*e, UINT64_MAX) << key;
    }
  }
  json big = tiny_llama();
  big["num_hidden_layers"] = uint64_t{1'000'000'000'000'000'000};
  EXPECT_FALSE(estimate_parameters(big));  // 1e18 layers x 592 overflows 64 bits
}

TEST(ParameterEstimateOddInput, MalformedNestedPiecesGiveNulloptNotCrash) {
  json vl = load("qwen2_vl_2b.json");
  vl["vision_config"]["depth"] = "32";
  EXPECT_FALSE(estimate_parameters(vl));

  json mllama = load("llama3_2_11b_vision.json");
  mllama["text_config"]["cross_attention_layers"] = {"3", -1, 1e9, 8};  // unusable entries are ignored
  EXPECT_TRUE(estimate_parameters(mllama));

  json janus = load("janus_1.3b.json");
  janus["vision_config"]["params"]["select_layer"] = -1000;  // keeps no layer at all
  EXPECT_FALSE(estimate_parameters(janus));

  json llava = load("llava_v1.5_7b.json");
  llava["mm_projector_type"] = "mlpx_gelu";
  EXPECT_FALSE(estimate_parameters(llava));
  llava["mm_projector_type"] = "mlp99999999999999999999x_gelu";
  EXPECT_FALSE(estimate_parameters(llava));
}

// Every fixture with each of its fields (top level and one level down) replaced by hostile values: the
// estimator must never throw, and whatever it returns must be a positive count.
TEST(ParameterEstimateOddInput, MutatedFixturesNeverThrow) {
  const std::vector<json> hostile = {json(-1),           json("x"),        json(1e300), json(UINT64_MAX),
                                     json::array({1}),   json::object(),   json(nullptr), json(0),
                                     json(0.5),          json(false)};
  int calls = 0;
  for (const Published& p : kFixtures) {
    const json original = load(p.fixture);
    const auto check = [&](const json& mutated) {
      ++calls;
      std::optional<uint64_t> e;
      ASSERT_NO_THROW(e = estimate_parameters(mutated)) << p.fixture;
      if (e) EXPECT_GT(*e, 0u) << p.fixture;
    };
    for (const auto& [key, value] : original.items()) {
      for (const json& h : hostile) {
        json m = original;
        m[key] = h;
        check(m);
      }
      if (value.is_object()) {
        for (const auto& [inner, unused] : value.items()) {
          for (const json& h : hostile) {
            json m = original;
            m[key][inner] = h;
            check(m);
          }
        }
      }
    }
  }
  EXPECT_GT(calls, 5000);
}

}  // namespace
