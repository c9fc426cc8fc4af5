// Context length (maxTokens) from config.json; the rule is written down in docs/model-metadata.md.

#include "model_json.hpp"
#include "modelagent/model_metadata.hpp"

namespace modelagent {

using namespace model_json;

namespace {

constexpr const char* kLengthKeys[] = {"max_position_embeddings", "seq_length",     "max_seq_len", "n_positions",
                                       "max_sequence_length",     "n_ctx",          "model_max_length"};

}  // namespace

uint64_t context_length(const nlohmann::json& config) {
  // TensorRT-LLM engines: the length the engine was built for is the real limit.
  if (const json* build = object_member(config, "build_config")) {
    if (auto n = positive_integer_member(*build, "max_seq_len")) return *n;
  }
  if (const json* pretrained = object_member(config, "pretrained_config")) {
    if (auto n = positive_integer_member(*pretrained, "max_position_embeddings")) return *n;
  }
  // Baichuan uses ALiBi and declares its trained length as model_max_length (13B has no
  // max_position_embeddings at all), so that field comes first there.
  if (lower(string_member(config, "model_type")).rfind("baichuan", 0) == 0) {
    if (auto n = positive_integer_member(config, "model_max_length")) return *n;
  }
  for (const json* scope : text_scopes(config)) {
    for (const char* key : kLengthKeys) {
      if (auto n = positive_integer_member(*scope, key)) return *n;
    }
  }
  return 0;
}

}  // namespace modelagent
