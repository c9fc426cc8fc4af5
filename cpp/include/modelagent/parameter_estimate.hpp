#pragma once

#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

namespace modelagent {

// Estimated parameter count of the model described by a parsed config.json, for when no safetensors
// headers are available. nullopt when the config lacks the fields an estimate needs. Never throws on
// odd input (wrong types, negatives, huge values → nullopt or a saturated count, never UB).
std::optional<uint64_t> estimate_parameters(const nlohmann::json& config);

}  // namespace modelagent
