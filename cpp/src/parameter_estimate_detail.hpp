#pragma once
// Private to cpp/src/parameter_estimate*.cpp: the pieces the family files share.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "modelagent/ascii_text.hpp"

namespace modelagent::param_estimate {

// A parameter count whose arithmetic saturates instead of wrapping; once saturated it stays saturated.
class Count {
 public:
  constexpr Count() = default;
  constexpr Count(uint64_t v) : value_(v) {}  // NOLINT(google-explicit-constructor): counts mix freely with sizes
  static constexpr Count max() {
    Count c(UINT64_MAX);
    c.saturated_ = true;
    return c;
  }
  constexpr bool saturated() const { return saturated_; }
  constexpr uint64_t value() const { return value_; }

 private:
  uint64_t value_ = 0;
  bool saturated_ = false;
};
Count operator+(Count a, Count b);
Count operator*(Count a, Count b);

// Typed reads from one JSON object of a config. A key holding null counts as absent. A key holding a value
// of the wrong kind (string for a size, negative, fractional, list) sets the shared `bad` flag, which makes
// the whole estimate nullopt: a malformed config gets no number rather than a wrong one.
class Fields {
 public:
  Fields(const nlohmann::json* obj, bool* bad) : obj_(obj), bad_(bad) {}

  bool valid() const { return obj_ != nullptr && obj_->is_object(); }
  const nlohmann::json* raw() const { return obj_; }
  bool* bad_flag() const { return bad_; }

  const nlohmann::json* find(std::string_view key) const;
  bool has(std::string_view key) const;
  // Non-negative integer (an integral float is accepted).
  std::optional<uint64_t> num(std::string_view key) const;
  // The first of several alias keys that is present.
  std::optional<uint64_t> num(std::initializer_list<std::string_view> keys) const;
  std::optional<double> real(std::string_view key) const;
  std::optional<bool> flag(std::string_view key) const;
  std::string text(std::string_view key) const;
  Fields sub(std::string_view key) const;
  const nlohmann::json* array(std::string_view key) const;
  std::string first_architecture() const;

  void mark_bad() const {
    if (bad_ != nullptr) *bad_ = true;
  }

 private:
  const nlohmann::json* obj_;
  bool* bad_;
};

bool one_of(std::string_view s, std::initializer_list<std::string_view> set);
bool ends_with(std::string_view s, std::string_view suffix);
bool contains(std::string_view s, std::string_view part);

// in -> out dense layer, with `out` bias terms when `bias`.
Count linear(uint64_t in, uint64_t out, bool bias);
Count layer_norm(uint64_t dim, bool bias);
// Two-matrix MLP (up, down) or gated three-matrix MLP (gate, up, down).
Count mlp(uint64_t hidden, uint64_t inter, bool gated, bool bias);
// How many i in [lo, hi) are multiples of step.
uint64_t multiples_in_range(uint64_t lo, uint64_t hi, uint64_t step);
// Number of classification labels (`id2label` size, else `num_labels`).
std::optional<uint64_t> label_count(const Fields& f);

// What sits on top of the backbone, from the architecture class name.
enum class HeadKind {
  kLm,     // *ForCausalLM, *ForConditionalGeneration, ...: vocab projection unless tied
  kNone,   // bare backbone (LlamaModel, MistralModel, ...)
  kScore,  // *ForSequenceClassification: hidden -> labels
  kValue,  // *ForRewardModel: hidden -> 1
};
HeadKind head_kind(std::string_view arch);

// Everything a decoder-only language model's count depends on, after family rules are applied.
struct DecoderSpec {
  uint64_t hidden = 0;
  uint64_t layers = 0;
  uint64_t vocab = 0;
  uint64_t embed_rows = 0;  // rows of the input embedding (vocab plus any extra rows)

  // Attention.
  uint64_t heads = 0;
  uint64_t kv_heads = 0;
  uint64_t head_dim = 0;
  uint64_t v_head_dim = 0;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mla = false;  // multi-head latent attention (DeepSeek-V2/V3, MiniCPM3)
  uint64_t q_lora_rank = 0;
  uint64_t kv_lora_rank = 0;
  uint64_t qk_nope_dim = 0;
  uint64_t qk_rope_dim = 0;
  Count attn_extra;  // per layer: q/k norms, attention sinks

  // Dense feed-forward.
  uint64_t inter = 0;
  bool gated = true;
  bool mlp_bias = false;

  // Mixture of experts.
  uint64_t experts = 0;
  uint64_t moe_inter = 0;
  uint64_t moe_layers = 0;
  bool expert_bias = false;
  bool router_bias = false;
  bool score_bias = false;
  uint64_t shared_inter = 0;
  bool shared_gate = false;

  // Norms.
  uint64_t norms_per_layer = 2;
  bool norm_bias = false;
  bool final_norm = true;
  bool final_norm_bias = false;

  Count embedding_extra;    // learned positions, token types
  Count layers_extra;       // total over all layers of per-layer oddities (cross-attention extras)
  uint64_t mtp_layers = 0;  // DeepSeek-V3 multi-token-prediction modules

  bool tied = false;
  HeadKind head = HeadKind::kLm;
  uint64_t labels = 2;
  bool lm_head_bias = false;
};

Count decoder_params(const DecoderSpec& s);

// Context a decoder config is read in: the architecture that decides the head, and for configs nested in a
// multimodal wrapper the outer tie_word_embeddings and class defaults for fields the serializer dropped.
struct DecoderContext {
  std::string arch;
  std::optional<bool> outer_tie;
  bool nested = false;
};

// Reads a decoder-only config (top level or nested text config); nullopt when required fields are missing.
std::optional<DecoderSpec> read_decoder(const Fields& f, const DecoderContext& ctx);

std::optional<Count> estimate_decoder(const Fields& f);
std::optional<Count> estimate_chatglm(const Fields& f);
std::optional<Count> estimate_dbrx(const Fields& f);
std::optional<Count> estimate_encoder(const Fields& f);
bool is_encoder_type(std::string_view model_type);
bool is_multimodal(const Fields& f, std::string_view model_type);
std::optional<Count> estimate_multimodal(const Fields& f, std::string_view model_type);
// Stand-alone vision encoders (clip_vision_model, siglip_vision_model).
std::optional<Count> estimate_vision_model(const Fields& f, std::string_view model_type);

// The config's model_type, lower-cased; when absent, derived from the architecture class name
// ("LlamaForCausalLM" -> "llama", "Qwen2MoeForCausalLM" -> "qwen2_moe").
std::string family_of(const Fields& f);

// Dispatch on model_type and config shape.
std::optional<Count> estimate_any(const Fields& f);

}  // namespace modelagent::param_estimate
