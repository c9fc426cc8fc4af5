#pragma once
// Names the OME controller reads: node label keys, per-node ConfigMap data keys and label values, byte for
// byte as OME v0.1.3 computes them (including its truncate-and-hash rule), plus Kubernetes name checks.

#include <optional>
#include <string>
#include <string_view>

namespace modelagent {

enum class ModelKind { BaseModel, ClusterBaseModel };

// "BaseModel" / "ClusterBaseModel"; throws std::invalid_argument for anything else.
ModelKind parse_model_kind(std::string_view kind);
std::string_view model_kind_name(ModelKind kind);

inline constexpr std::string_view kModelLabelDomain = "models.ome.io";
inline constexpr size_t kLabelNameBudget = 49;       // OME's budget for the part after "models.ome.io/"
inline constexpr size_t kConfigMapKeyBudget = 253;

// s unchanged if it fits max_len; else the first 8 hex digits of SHA-256(s), then (when max_len > 9) "-" and
// the last max_len - 9 bytes of s; when max_len <= 9 the hash cut to max_len.
std::string truncate_with_hash(std::string_view s, size_t max_len);

// Node label key: models.ome.io/clusterbasemodel.<name> or models.ome.io/<namespace>.basemodel.<name>.
// `namespace_name` must be non-empty for BaseModel and empty for ClusterBaseModel (std::invalid_argument).
std::string node_label_key(ModelKind kind, std::string_view name, std::string_view namespace_name = {});

// ConfigMap data key: clusterbasemodel.<name> or <namespace>.basemodel.<name>; same argument rules.
std::string configmap_key(ModelKind kind, std::string_view name, std::string_view namespace_name = {});

// A ConfigMap key read back as the OME controller does: prefix "clusterbasemodel." or split at the first
// ".basemodel.". Truncated keys give the truncated parts (the hash cannot be reversed).
struct ModelKey {
  ModelKind kind;
  std::string namespace_name;  // empty for ClusterBaseModel
  std::string name;
};
std::optional<ModelKey> parse_configmap_key(std::string_view key);

// The node label value for a model status: "Ready", "Updating", "Failed"; std::nullopt for "Deleted"
// (the label is removed). Throws std::invalid_argument for any other status.
std::optional<std::string> node_label_value(std::string_view status);

// Kubernetes validation, as the API server applies it. Each *_problem returns "" when valid, otherwise a
// sentence saying what is wrong.
std::string label_key_problem(std::string_view key);      // qualified name: [DNS-subdomain prefix "/"] name
std::string label_value_problem(std::string_view value);  // empty, or <= 63 of [A-Za-z0-9._-] alnum at both ends
std::string configmap_key_problem(std::string_view key);  // 1-253 of [A-Za-z0-9._-], not starting with ".."; not "."
inline bool is_valid_label_key(std::string_view key) { return label_key_problem(key).empty(); }
inline bool is_valid_label_value(std::string_view value) { return label_value_problem(value).empty(); }
inline bool is_valid_configmap_key(std::string_view key) { return configmap_key_problem(key).empty(); }

}  // namespace modelagent
