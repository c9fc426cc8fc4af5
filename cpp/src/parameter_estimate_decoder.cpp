// Decoder-only language models: dense, mixture-of-experts and multi-head-latent-attention families, plus the
// two families whose checkpoints do not follow the common layout (ChatGLM, DBRX).

#include <algorithm>
#include <set>
#include <string>

#include "parameter_estimate_detail.hpp"

namespace modelagent::param_estimate {

namespace {

enum class QkNorm {
  kNone,
  kHeadDim,    // one weight vector of head_dim for q and one for k (qwen3, gemma3)
  kFullWidth,  // weights over all q heads and all kv heads (olmo2, cohere with use_qk_norm)
};

// Layout facts of a family that config.json does not spell out.
struct Traits {
  bool qkv_bias = false;
  bool o_bias = false;
  bool gated = true;
  bool mlp_bias = false;
  uint64_t norms_per_layer = 2;
  bool norm_bias = false;
  bool final_norm = true;
  QkNorm qk_norm = QkNorm::kNone;
  bool tied_default = true;  // transformers' PretrainedConfig default, unless the family's class says otherwise
  bool lm_head_bias = false;
  bool learned_positions = false;
  bool attention_sinks = false;
};

Traits traits_for(std::string_view mt, const Fields& f) {
  Traits t;
  // Families whose config classes default to untied embeddings.
  if (one_of(mt, {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen2_vl",
                  "qwen2_5_vl", "qwen2_5_vl_text", "qwen2_vl_text", "phi", "phi3", "phimoe", "stablelm", "gpt_neox",
                  "gptj", "olmo", "olmo2", "olmoe", "deepseek", "deepseek_v2", "deepseek_v3", "kimi_k2", "internlm",
                  "internlm2", "internlm3", "baichuan", "xverse", "granite", "granitemoe", "gpt_oss", "llama4_text",
                  "mllama_text_model", "yi", "mistral3", "ministral", "exaone4", "hunyuan", "glm", "glm4", "phi3_v",
                  "llava", "llava_llama"}))
    t.tied_default = false;

  if (one_of(mt, {"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl", "qwen2_vl_text", "qwen2_5_vl_text"}))
    t.qkv_bias = true;
  if (one_of(mt, {"qwen3", "qwen3_moe", "gemma3_text", "gemma3"})) t.qk_norm = QkNorm::kHeadDim;
  if (mt == "olmo2" || mt == "olmoe") t.qk_norm = QkNorm::kFullWidth;
  if (mt == "olmo") {  // non-parametric layer norms
    t.norms_per_layer = 0;
    t.final_norm = false;
  }
  if (mt == "gemma2" || mt == "gemma3_text" || mt == "gemma3") t.norms_per_layer = 4;
  if (mt == "cohere" || mt == "cohere2") {
    t.norms_per_layer = 1;  // parallel attention and MLP share one (bias-free) layer norm
    if (f.flag("use_qk_norm").value_or(false)) t.qk_norm = QkNorm::kFullWidth;
  }
  if (mt == "internlm") t.qkv_bias = t.o_bias = f.flag("bias").value_or(true);
  if (mt == "internlm2") t.qkv_bias = t.o_bias = f.flag("bias").value_or(false);
  if (mt == "phi") {
    t.qkv_bias = t.o_bias = true;
    t.gated = false;
    t.mlp_bias = true;
    t.norms_per_layer = 1;
    t.norm_bias = true;
    t.lm_head_bias = true;
  }
  if (mt == "stablelm") {
    t.qkv_bias = f.flag("use_qkv_bias").value_or(false);
    t.norm_bias = true;
    if (f.flag("use_parallel_residual").value_or(false)) t.norms_per_layer = 1;
  }
  if (mt == "starcoder2") {
    const bool b = f.flag("use_bias").value_or(true);
    t.qkv_bias = t.o_bias = t.mlp_bias = b;
    t.gated = false;
    t.norm_bias = true;
  }
  if (mt == "gpt2" || mt == "gpt_bigcode") {
    t.qkv_bias = t.o_bias = t.mlp_bias = true;
    t.gated = false;
    t.norm_bias = true;
    t.learned_positions = true;
  }
  if (mt == "gpt_neox") {
    t.qkv_bias = t.o_bias = t.mlp_bias = true;
    t.gated = false;
    t.norm_bias = true;
  }
  if (mt == "gptj") {
    t.gated = false;
    t.mlp_bias = true;
    t.norms_per_layer = 1;
    t.norm_bias = true;
    t.lm_head_bias = true;
  }
  if (mt == "gpt_oss") {
    t.qkv_bias = t.o_bias = true;
    t.attention_sinks = true;
  }
  // Llama-style configs state their optional biases.
  if (f.flag("attention_bias").value_or(false)) t.qkv_bias = t.o_bias = true;
  if (f.flag("mlp_bias").value_or(false)) t.mlp_bias = true;
  return t;
}

// transformers class defaults for fields a nested (composite) config may omit when serialized.
nlohmann::json nested_defaults(std::string_view mt) {
  if (mt == "llama")
    return {{"hidden_size", 4096}, {"intermediate_size", 11008}, {"num_hidden_layers", 32},
            {"num_attention_heads", 32}, {"vocab_size", 32000}};
  if (mt == "mistral")
    return {{"hidden_size", 4096}, {"intermediate_size", 14336}, {"num_hidden_layers", 32},
            {"num_attention_heads", 32}, {"num_key_value_heads", 8}, {"vocab_size", 32000}};
  if (mt == "qwen2")
    return {{"hidden_size", 4096}, {"intermediate_size", 22016}, {"num_hidden_layers", 32},
            {"num_attention_heads", 32}, {"num_key_value_heads", 32}, {"vocab_size", 151936}};
  if (mt == "gemma3_text")
    return {{"hidden_size", 2304}, {"intermediate_size", 9216}, {"num_hidden_layers", 26},
            {"num_attention_heads", 8}, {"num_key_value_heads", 4}, {"head_dim", 256}, {"vocab_size", 262208}};
  return nlohmann::json::object();
}

// Number of decoder layers that carry a mixture-of-experts block instead of the dense MLP.
std::optional<uint64_t> moe_layer_count(const Fields& f, std::string_view mt, uint64_t layers) {
  if (const nlohmann::json* list = f.array("moe_layers"); list != nullptr) {  // llama4 explicit list
    std::set<uint64_t> idx;
    for (const auto& v : *list) {
      if (!v.is_number_integer() && !v.is_number_unsigned()) return std::nullopt;
      const int64_t i = v.get<int64_t>();
      if (i >= 0 && static_cast<uint64_t>(i) < layers) idx.insert(static_cast<uint64_t>(i));
    }
    return idx.size();
  }
  if (f.has("first_k_dense_replace") || f.has("moe_layer_freq")) {  // DeepSeek family
    const uint64_t first_dense = f.num("first_k_dense_replace").value_or(0);
    const uint64_t freq = f.num("moe_layer_freq").value_or(1);
    return multiples_in_range(first_dense, layers, freq);
  }
  if (f.has("interleave_moe_layer_step") || mt == "llama4_text") {
    const uint64_t step = f.num("interleave_moe_layer_step").value_or(1);
    return step == 0 ? 0 : layers / step;  // layers step-1, 2*step-1, ...
  }
  if (f.has("decoder_sparse_step") || f.has("mlp_only_layers")) {  // qwen2_moe / qwen3_moe
    const uint64_t step = f.num("decoder_sparse_step").value_or(1);
    if (step == 0) return 0;
    uint64_t n = multiples_in_range(1, layers + 1, step);  // layer i is sparse when (i+1) % step == 0
    if (const nlohmann::json* dense = f.array("mlp_only_layers"); dense != nullptr) {
      std::set<uint64_t> seen;
      for (const auto& v : *dense) {
        if (!v.is_number_integer() && !v.is_number_unsigned()) return std::nullopt;
        const int64_t i = v.get<int64_t>();
        if (i < 0 || static_cast<uint64_t>(i) >= layers || (static_cast<uint64_t>(i) + 1) % step != 0) continue;
        if (seen.insert(static_cast<uint64_t>(i)).second) --n;
      }
    }
    return n;
  }
  return layers;
}

}  // namespace

std::optional<DecoderSpec> read_decoder(const Fields& given, const DecoderContext& ctx) {
  const std::string mt = family_of(given);

  // Nested configs may omit fields equal to their class defaults; fill those in from a merged copy.
  nlohmann::json merged;
  Fields f = given;
  if (ctx.nested && given.valid()) {
    merged = nested_defaults(mt);
    if (!merged.empty()) {
      merged.update(*given.raw());
      f = Fields(&merged, given.bad_flag());
    }
  }

  const Traits t = traits_for(mt, f);
  DecoderSpec s;
  const auto hidden = f.num({"hidden_size", "d_model", "n_embd", "dim", "model_dim"});
  const auto layers = f.num({"num_hidden_layers", "num_layers", "n_layer", "n_layers"});
  const auto heads = f.num({"num_attention_heads", "n_head", "n_heads", "num_heads"});
  const auto vocab = f.num({"vocab_size", "padded_vocab_size", "n_vocab"});
  if (!hidden || !layers || !heads || !vocab || *hidden == 0 || *layers == 0 || *heads == 0 || *vocab == 0)
    return std::nullopt;
  s.hidden = *hidden;
  s.layers = *layers;
  s.heads = *heads;
  s.vocab = *vocab;
  s.embed_rows = s.vocab;

  s.kv_heads = s.heads;
  if (auto kv = f.num({"num_key_value_heads", "num_kv_heads", "n_kv_heads", "n_head_kv"}); kv && *kv > 0)
    s.kv_heads = *kv;
  if ((mt == "gpt_bigcode" && f.flag("multi_query").value_or(true)) ||
      (mt == "falcon" && f.flag("multi_query").value_or(true) && !f.flag("new_decoder_architecture").value_or(false)))
    s.kv_heads = 1;
  s.head_dim = s.hidden / s.heads;
  if (auto hd = f.num({"head_dim", "kv_channels", "head_size", "attention_head_size"}); hd && *hd > 0)
    s.head_dim = *hd;
  if (s.head_dim == 0) return std::nullopt;  // more heads than hidden units: not a real shape
  s.v_head_dim = s.head_dim;

  // Multi-head latent attention.
  const auto kv_lora = f.num("kv_lora_rank");
  if (kv_lora && *kv_lora > 0 && f.flag("use_mla").value_or(true)) {
    s.mla = true;
    s.kv_lora_rank = *kv_lora;
    s.q_lora_rank = f.num("q_lora_rank").value_or(0);
    s.qk_nope_dim = f.num("qk_nope_head_dim").value_or(0);
    s.qk_rope_dim = f.num("qk_rope_head_dim").value_or(0);
    s.v_head_dim = f.num("v_head_dim").value_or(s.hidden / s.heads);
    if (s.qk_nope_dim + s.qk_rope_dim == 0) return std::nullopt;
  }

  s.qkv_bias = t.qkv_bias;
  s.o_bias = t.o_bias;
  switch (t.qk_norm) {
    case QkNorm::kNone:
      break;
    case QkNorm::kHeadDim:
      s.attn_extra = Count(s.head_dim) * 2;
      break;
    case QkNorm::kFullWidth:
      s.attn_extra = (Count(s.heads) + s.kv_heads) * s.head_dim;
      break;
  }
  if (mt == "phi" && f.flag("qk_layernorm").value_or(false)) s.attn_extra = layer_norm(s.head_dim, true) * 2;
  if (mt == "stablelm" && f.flag("qk_layernorm").value_or(false))
    s.attn_extra = (Count(s.heads) + s.kv_heads) * s.head_dim;  // one bias-free norm per head
  if (t.attention_sinks) s.attn_extra = s.attn_extra + s.heads;

  s.gated = t.gated;
  s.mlp_bias = t.mlp_bias;
  if (mt == "llama4_text") {
    s.inter = f.num("intermediate_size_mlp").value_or(0);
  } else if (auto inter = f.num({"intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim", "intermediate_dim"})) {
    s.inter = *inter;
  } else if (!t.gated) {
    const Count four_h = Count(s.hidden) * 4;  // GPT-2 style: n_inner null means 4 * hidden
    if (four_h.saturated()) return std::nullopt;
    s.inter = four_h.value();
  }

  // Mixture of experts.
  // TensorRT-LLM checkpoints describe experts in a nested "moe" object.
  const Fields trt_moe = f.sub("moe");
  auto experts = f.num({"num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"});
  if (!experts) experts = trt_moe.num("num_experts");
  if (experts && *experts > 0) {
    s.experts = *experts;
    s.moe_inter = f.num("moe_intermediate_size").value_or(mt == "llama4_text" ? f.num("intermediate_size").value_or(0)
                                                                                 : s.inter);
    const auto n = moe_layer_count(f, mt, s.layers);
    if (!n) return std::nullopt;
    s.moe_layers = std::min(*n, s.layers);
    s.expert_bias = (mt == "gpt_oss");
    s.router_bias = (mt == "gpt_oss");
    s.score_bias = (f.text("topk_method") == "noaux_tc");
    if (auto shared = f.num("n_shared_experts"); shared && *shared > 0) {
      s.shared_inter = (Count(*shared) * s.moe_inter).value();
    } else if (auto width = f.num("shared_expert_intermediate_size").value_or(
                   trt_moe.num("shared_expert_intermediate_size").value_or(0));
               width > 0) {
      s.shared_inter = width;
      s.shared_gate = true;
    } else if (mt == "llama4_text") {
      s.shared_inter = f.num("intermediate_size").value_or(0);
    }
    if (s.moe_inter == 0) return std::nullopt;
  }
  if (s.inter == 0 && s.moe_layers < s.layers) return std::nullopt;

  s.norms_per_layer = t.norms_per_layer;
  s.norm_bias = t.norm_bias;
  s.final_norm = t.final_norm;
  s.final_norm_bias = t.norm_bias;

  if (t.learned_positions) {
    const uint64_t positions = f.num({"n_positions", "max_position_embeddings"}).value_or(0);
    s.embedding_extra = Count(positions) * s.hidden;
  }

  // mllama: cross-attention layers add q/k norms and two gates; the embedding has 8 extra rows.
  if (mt == "mllama_text_model") {
    s.embed_rows = s.vocab + 8;
    if (const nlohmann::json* cross = f.array("cross_attention_layers"); cross != nullptr) {
      std::set<int64_t> idx;
      for (const auto& v : *cross)
        if ((v.is_number_integer() || v.is_number_unsigned()) && v.get<int64_t>() >= 0 &&
            static_cast<uint64_t>(v.get<int64_t>()) < s.layers)
          idx.insert(v.get<int64_t>());
      s.layers_extra = Count(idx.size()) * (Count(s.head_dim) * 2 + 2);
    }
  }

  s.mtp_layers = f.num("num_nextn_predict_layers").value_or(0);

  const auto tie = f.flag("tie_word_embeddings");
  s.tied = tie ? *tie : ctx.outer_tie.value_or(t.tied_default);
  s.head = head_kind(ctx.arch);
  if (mt == "chatglm") s.head = HeadKind::kLm;
  if (s.head == HeadKind::kScore) s.labels = label_count(f).value_or(2);
  s.lm_head_bias = t.lm_head_bias;
  return s;
}

Count decoder_params(const DecoderSpec& s) {
  const uint64_t h = s.hidden;
  Count attn;
  if (s.mla) {
    const Count qk = Count(s.qk_nope_dim) + s.qk_rope_dim;
    const Count q = s.q_lora_rank > 0
                        ? linear(h, s.q_lora_rank, s.qkv_bias) + s.q_lora_rank + Count(s.q_lora_rank) * s.heads * qk
                        : Count(h) * s.heads * qk;
    const Count kv = linear(h, (Count(s.kv_lora_rank) + s.qk_rope_dim).value(), s.qkv_bias) + s.kv_lora_rank +
                     Count(s.kv_lora_rank) * s.heads * (Count(s.qk_nope_dim) + s.v_head_dim);
    attn = q + kv + Count(s.heads) * s.v_head_dim * h + (s.o_bias ? Count(h) : Count(0));
  } else {
    const uint64_t q_out = (Count(s.heads) * s.head_dim).value();
    const uint64_t k_out = (Count(s.kv_heads) * s.head_dim).value();
    const uint64_t v_out = (Count(s.kv_heads) * s.v_head_dim).value();
    attn = linear(h, q_out, s.qkv_bias) + linear(h, k_out, s.qkv_bias) + linear(h, v_out, s.qkv_bias) +
           linear((Count(s.heads) * s.v_head_dim).value(), h, s.o_bias);
  }
  attn = attn + s.attn_extra;
  const Count norms = Count(s.norms_per_layer) * layer_norm(h, s.norm_bias);
  const Count dense = mlp(h, s.inter, s.gated, s.mlp_bias);
  Count moe;
  if (s.experts > 0) {
    moe = Count(s.experts) * mlp(h, s.moe_inter, true, s.expert_bias) + linear(h, s.experts, s.router_bias);
    if (s.score_bias) moe = moe + s.experts;
    if (s.shared_inter > 0) moe = moe + mlp(h, s.shared_inter, true, false);
    if (s.shared_gate) moe = moe + h;
  }

  const uint64_t dense_layers = s.layers - s.moe_layers;
  Count total = Count(s.embed_rows) * h + s.embedding_extra;
  total = total + Count(s.layers) * (attn + norms) + Count(dense_layers) * dense + Count(s.moe_layers) * moe;
  total = total + s.layers_extra;
  if (s.final_norm) total = total + layer_norm(h, s.final_norm_bias);

  switch (s.head) {
    case HeadKind::kLm:
      if (!s.tied) total = total + linear(h, s.vocab, s.lm_head_bias);
      break;
    case HeadKind::kNone:
      break;
    case HeadKind::kScore:
      total = total + Count(h) * s.labels;
      break;
    case HeadKind::kValue:
      total = total + h;
      break;
  }

  if (s.mtp_layers > 0) {
    // Each module: a full decoder layer, two input norms, the 2h -> h projection, the head norm, and the
    // embedding and output head copies the checkpoint stores with it.
    const Count block = attn + norms + (s.experts > 0 ? moe : dense);
    const Count module = block + Count(h) * 3 + Count(h) * 2 * h + Count(s.vocab) * h * 2;
    total = total + Count(s.mtp_layers) * module;
  }
  return total;
}

std::optional<Count> estimate_decoder(const Fields& f) {
  DecoderContext ctx;
  ctx.arch = f.first_architecture();
  const auto spec = read_decoder(f, ctx);
  if (!spec) return std::nullopt;
  return decoder_params(*spec);
}

// ChatGLM (THUDM chatglm2/3, glm-4 in its original format): fused query_key_value with multi-query groups,
// a fused gate+up projection, RMSNorm or LayerNorm, and an untied output_layer even in "ChatGLMModel".
std::optional<Count> estimate_chatglm(const Fields& f) {
  const auto hidden = f.num("hidden_size");
  const auto layers = f.num({"num_layers", "num_hidden_layers"});
  const auto heads = f.num("num_attention_heads");
  const auto vocab = f.num({"padded_vocab_size", "vocab_size"});
  const auto inter = f.num({"ffn_hidden_size", "intermediate_size"});
  if (!hidden || !layers || !heads || !vocab || !inter || *hidden == 0 || *layers == 0 || *heads == 0 || *vocab == 0)
    return std::nullopt;
  const uint64_t h = *hidden;
  const uint64_t head_dim = f.num("kv_channels").value_or(h / *heads);
  const uint64_t groups =
      f.flag("multi_query_attention").value_or(false) ? f.num("multi_query_group_num").value_or(1) : *heads;
  const bool bias_linear = f.flag("add_bias_linear").value_or(false);
  const bool qkv_bias = f.flag("add_qkv_bias").value_or(false) || bias_linear;
  const bool rms = f.flag("rmsnorm").value_or(true);
  const Count norm = layer_norm(h, !rms);

  const Count qkv_out = Count(*heads) * head_dim + Count(groups) * head_dim * 2;
  const Count attn = Count(h) * qkv_out + (qkv_bias ? qkv_out : Count(0)) +
                     linear((Count(*heads) * head_dim).value(), h, bias_linear);
  const Count ffn = linear(h, (Count(*inter) * 2).value(), bias_linear) + linear(*inter, h, bias_linear);
  Count total = Count(*vocab) * h + Count(*layers) * (attn + ffn + norm * 2);
  if (f.flag("post_layer_norm").value_or(true)) total = total + norm;
  if (!f.flag("tie_word_embeddings").value_or(false)) total = total + Count(*vocab) * h;
  return total;
}

// DBRX: fused Wqkv, bias-free layer norms, 16 gated experts per layer, untied head.
std::optional<Count> estimate_dbrx(const Fields& f) {
  const auto d = f.num({"d_model", "hidden_size"});
  const auto layers = f.num({"n_layers", "num_hidden_layers"});
  const auto heads = f.num({"n_heads", "num_attention_heads"});
  const auto vocab = f.num("vocab_size");
  if (!d || !layers || !heads || !vocab || *d == 0 || *layers == 0 || *heads == 0 || *vocab == 0) return std::nullopt;
  const Fields attn_cfg = f.sub("attn_config");
  const Fields ffn_cfg = f.sub("ffn_config");
  const uint64_t kv_heads = attn_cfg.num("kv_n_heads").value_or(1);
  const uint64_t ffn = ffn_cfg.num("ffn_hidden_size").value_or(3584);
  const uint64_t experts = ffn_cfg.num("moe_num_experts").value_or(4);
  const uint64_t head_dim = *d / *heads;

  const Count attn = Count(*d) * (Count(*d) + Count(kv_heads) * head_dim * 2) + Count(*d) * *d;
  const Count moe = Count(experts) * ffn * *d * 3 + Count(*d) * experts;
  Count total = Count(*vocab) * *d + Count(*layers) * (attn + moe + Count(*d) * 2) + *d;
  if (!f.flag("tie_word_embeddings").value_or(false)) total = total + Count(*vocab) * *d;
  return total;
}

std::string family_of(const Fields& f) {
  std::string mt = ascii_lower(f.text("model_type"));
  if (!mt.empty()) return mt;
  // No model_type (TensorRT-LLM pretrained_config, hand-written configs): derive it from the class name.
  std::string arch = f.first_architecture();
  for (std::string_view suffix : {"ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSequenceClassification",
                                  "ForTokenClassification", "ForRewardModel", "ForMaskedLM", "Model"}) {
    if (ends_with(arch, suffix)) {
      arch.resize(arch.size() - suffix.size());
      break;
    }
  }
  const std::string base = ascii_lower(arch);
  static const std::pair<std::string_view, std::string_view> kRenamed[] = {
      {"gptneox", "gpt_neox"},       {"gptbigcode", "gpt_bigcode"}, {"gptj", "gptj"},
      {"gptoss", "gpt_oss"},         {"qwen", "qwen2"},             {"qwen2moe", "qwen2_moe"},
      {"qwen3moe", "qwen3_moe"},     {"qwen2vl", "qwen2_vl"},       {"deepseekv2", "deepseek_v2"},
      {"deepseekv3", "deepseek_v3"}, {"gemma3", "gemma3_text"},     {"llama4", "llama4_text"},
      {"xlmroberta", "xlm-roberta"}, {"granitemoe", "granitemoe"},  {"phimoe", "phimoe"},
  };
  for (const auto& [from, to] : kRenamed)
    if (base == from) return std::string(to);
  return base;
}

std::optional<Count> estimate_any(const Fields& f) {
  const std::string mt = family_of(f);
  if (is_multimodal(f, mt)) return estimate_multimodal(f, mt);
  if (is_encoder_type(mt)) return estimate_encoder(f);
  if (mt == "clip_vision_model" || mt == "siglip_vision_model") return estimate_vision_model(f, mt);
  if (mt == "chatglm" || contains(f.first_architecture(), "ChatGLM")) return estimate_chatglm(f);
  if (mt == "dbrx") return estimate_dbrx(f);
  return estimate_decoder(f);
}

}  // namespace modelagent::param_estimate
