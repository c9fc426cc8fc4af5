#pragma once
// Destination-name safety for the download engine (check_safe_relative_path lives in
// download_engine.hpp) and the names of the engine's own files beside and under the root.

#include <filesystem>
#include <string>

#include "modelagent/download_plan.hpp"

namespace modelagent {

// Directory under the destination root that holds the engine's state (verified-stamps, the root lock)
// and other tools' metadata. Planned files may not live under it.
inline constexpr const char* kStateDirName = ".modelagent";

// "<name>.partial" beside the final path (a shortened, hashed name when that would exceed NAME_MAX).
std::filesystem::path partial_path_for(const std::filesystem::path& final_path);
// "<partial>.journal": the resume journal of a partial file.
std::filesystem::path journal_path_for(const std::filesystem::path& final_path);

// The lexical half of check_safe_relative_path (no filesystem access): non-empty, relative, no NUL or
// backslash, no empty, "." or ".." segment, segments <= 255 and the whole <= 4096 bytes. Sources call
// it when they map remote names to paths. Throws UnsafePathError naming the path and the reason.
void check_safe_relative_name(const std::string& relative_path);

// Checks every planned path with check_safe_relative_path and across the plan: no duplicates, no file
// that is also a directory of another ("a" and "a/b"), no file colliding with another's partial or
// journal name, nothing under kStateDirName. Throws UnsafePathError naming the path(s) at fault.
void validate_plan_paths(const DownloadPlan& plan, const std::filesystem::path& root);

}  // namespace modelagent
