#pragma once
// The per-model value stored in the node's ConfigMap (OME's ModelEntry / ModelConfig), parsed tolerantly and
// serialised byte-for-byte as Go's encoding/json writes OME's structs. Field list and rules:
// docs/wire-contract.md.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelagent {

namespace model_status {
inline constexpr std::string_view kReady = "Ready";
inline constexpr std::string_view kUpdating = "Updating";
inline constexpr std::string_view kFailed = "Failed";
inline constexpr std::string_view kDeleted = "Deleted";
}  // namespace model_status

// True for the four statuses OME defines.
bool is_known_model_status(std::string_view status);

// modelFramework / modelFormat: {"name": ..., "version": ...}, version omitted when absent. In Go these are
// map[string]string, so other string keys read from a ConfigMap are kept in `extra` and written back.
struct NameVersion {
  std::string name;
  std::optional<std::string> version;
  std::map<std::string, std::string> extra;
  bool operator==(const NameVersion&) const = default;
};

// "config": every field is omitted when empty, as Go's omitempty does.
struct ModelConfig {
  std::string model_type;
  std::string model_architecture;
  std::optional<NameVersion> model_framework;
  std::optional<NameVersion> model_format;
  std::string model_parameter_size;
  int32_t max_tokens = 0;
  std::vector<std::string> model_capabilities;
  nlohmann::json decoded_model_configuration = nlohmann::json::object();  // always a JSON object
  std::string quantization;
  nlohmann::json extra = nlohmann::json::object();  // unknown fields, kept for the round trip
};

// "progress": download progress of the model on this node (field names as upstream OME's DownloadProgress).
struct ModelProgress {
  std::string phase;  // e.g. "Scanning", "Downloading", "Verifying", "Finalizing"
  uint64_t total_bytes = 0;
  uint64_t completed_bytes = 0;
  uint32_t total_files = 0;
  uint32_t completed_files = 0;
  double speed_bytes_per_sec = 0;
  std::string last_updated;  // RFC 3339, UTC
};

struct ModelEntry {
  std::string name;
  std::string status;  // one of model_status::*; other strings read from a ConfigMap are kept verbatim
  std::optional<ModelConfig> config;
  std::optional<ModelProgress> progress;
  nlohmann::json extra = nlohmann::json::object();  // unknown top-level fields, kept for the round trip
};

// The entry as Go's json.Marshal would write it: name, status, config, progress, then preserved unknown fields
// in byte order of their keys.
std::string serialize_model_entry(const ModelEntry& entry);

// The same content as a JSON value; objects keep the field order of serialize_model_entry.
nlohmann::ordered_json model_entry_to_value(const ModelEntry& entry);

// Parses one ConfigMap value. Unknown fields are kept in `extra`; wrong types, a missing name or status,
// an out-of-range maxTokens or malformed JSON throw ModelEntryError naming `key` (the ConfigMap key, if given)
// and the field.
ModelEntry parse_model_entry(std::string_view json_text, std::string_view key = {});
ModelEntry model_entry_from_value(const nlohmann::json& value, std::string_view key = {});

// Go encoding/json output for a JSON value: HTML-safe string escaping and float64 formatting as Go does them.
// nlohmann::json objects come out in byte order of their keys (a Go map); ordered_json objects in their stored
// order (a Go struct). Throws ModelEntryError for NaN or infinity.
std::string go_json(const nlohmann::json& value);
std::string go_json(const nlohmann::ordered_json& value);

// A float64 as Go's encoding/json formats it ("1", "0.5", "1e-7", "1e+21").
std::string go_format_float(double value);

// "2024-05-01T12:00:00Z", the form Go's time.RFC3339 gives for a UTC time.
std::string format_rfc3339(std::chrono::system_clock::time_point when);

}  // namespace modelagent
