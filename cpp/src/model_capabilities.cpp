// Vision detection and the capability reported for a model (VISION, TEXT_RERANK, TEXT_EMBEDDINGS, CHAT).

#include <string>
#include <string_view>

#include "model_json.hpp"
#include "modelagent/model_metadata.hpp"

namespace modelagent {

using namespace model_json;

namespace {

bool configured(const json* v) {
  if (!v) return false;
  if (v->is_object()) return !v->empty();
  if (v->is_string()) return !v->get_ref<const std::string&>().empty();
  if (v->is_boolean()) return v->get<bool>();
  return false;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Encoder-only families (BERT and relatives) serve as embedders unless they carry a classifier head.
bool encoder_only_type(const std::string& type) {
  return contains(type, "bert") || type == "electra" || type == "mpnet" || type == "new" || type == "xlm";
}

// Model types whose main class is named *Model yet includes the language-model head.
bool lm_head_model_type(const std::string& type) { return type == "chatglm"; }

// A bare base-model class (MistralModel, Qwen2Model, BertModel, ...) outputs hidden states, not tokens:
// it is loaded to produce embeddings.
bool base_model_class(const std::string& architecture, const std::string& type) {
  return ends_with(architecture, "Model") && !ends_with(architecture, "LMHeadModel") &&
         !ends_with(architecture, "PreTrainedModel") && !lm_head_model_type(type);
}

bool not_causal(const json& config) {
  for (const json* scope : text_scopes(config)) {
    const json* v = member(*scope, "is_causal");
    if (v && v->is_boolean() && !v->get<bool>()) return true;
  }
  return false;
}

}  // namespace

bool has_vision(const json& config) {
  for (const char* key : {"vision_config", "vision_tower", "mm_vision_tower", "img_processor", "visual",
                          "vision_encoder", "image_encoder"}) {
    if (configured(member(config, key))) return true;
  }
  std::string type = lower(string_member(config, "model_type"));
  return ends_with(type, "_vision_model");
}

std::vector<std::string> detect_capabilities(const json& config, bool sentence_transformers) {
  if (has_vision(config)) return {"VISION"};
  std::string architecture = architecture_of(config);
  std::string arch = lower(architecture);
  std::string type = lower(model_type_of(config));
  if (ends_with(arch, "forsequenceclassification") || contains(arch, "reward")) return {"TEXT_RERANK"};
  if (sentence_transformers || contains(arch, "embed") || contains(arch, "sentence") || not_causal(config) ||
      encoder_only_type(type) || base_model_class(architecture, type)) {
    return {"TEXT_EMBEDDINGS"};
  }
  return {"CHAT"};
}

}  // namespace modelagent
