// Finding a model's config.json (or diffusers model_index.json) and loading it as JSON.

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "modelagent/errors.hpp"
#include "modelagent/model_metadata.hpp"

namespace modelagent {

namespace fs = std::filesystem;

namespace {

bool regular_file_at(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool is_candidate_name(const std::string& name) {
  return name == "config.json" || name == "model_index.json";
}

ModelConfigLocation location(const fs::path& file) {
  return {file, file.filename() == "model_index.json"};
}

// Breadth-first walk below root. Returns the shallowest candidate, lexicographically first by relative
// path among equals; empty when none was found within the limits.
fs::path walk_for_config(const fs::path& root, const ConfigWalkLimits& limits, bool& stopped_at_limit) {
  std::vector<fs::path> level{root};
  std::size_t entries = 0;
  stopped_at_limit = false;
  for (int depth = 0; depth <= limits.max_depth && !level.empty(); ++depth) {
    std::vector<fs::path> next_level;
    std::vector<fs::path> candidates;
    for (const fs::path& dir : level) {
      std::error_code ec;
      fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
      if (ec) continue;
      for (fs::directory_iterator end; it != end; it.increment(ec)) {
        if (ec) break;
        if (++entries > limits.max_entries) {
          stopped_at_limit = true;
          break;
        }
        const fs::path& p = it->path();
        std::string name = p.filename().string();
        if (name.empty() || name[0] == '.') continue;
        std::error_code sec;
        fs::file_status own = it->symlink_status(sec);
        if (sec) continue;
        if (fs::is_directory(own)) {
          next_level.push_back(p);
        } else if (depth > 0 && is_candidate_name(name) && regular_file_at(p)) {
          candidates.push_back(p);
        }
      }
      if (stopped_at_limit) break;
    }
    if (!candidates.empty()) {
      return *std::min_element(candidates.begin(), candidates.end(), [&](const fs::path& a, const fs::path& b) {
        return a.lexically_relative(root).generic_string() < b.lexically_relative(root).generic_string();
      });
    }
    if (stopped_at_limit) break;
    std::sort(next_level.begin(), next_level.end());
    level = std::move(next_level);
  }
  return {};
}

}  // namespace

ModelConfigLocation locate_model_config(const fs::path& path, const ConfigWalkLimits& limits) {
  if (path.empty()) throw ModelConfigError("the model path is empty");
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    if (!ec || ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      throw ModelConfigError("model directory " + path.string() + " does not exist");
    }
    throw ModelConfigError("cannot access model directory " + path.string() + ": " + ec.message());
  }
  if (fs::is_regular_file(status)) return location(path);
  if (!fs::is_directory(status)) {
    throw ModelConfigError("model path " + path.string() + " is neither a directory nor a file");
  }

  for (const char* name : {"config.json", "model_index.json"}) {
    if (regular_file_at(path / name)) return location(path / name);
  }
  for (const char* sub : {"safetensors", "pytorch_model", "model"}) {
    if (regular_file_at(path / sub / "config.json")) return location(path / sub / "config.json");
  }
  bool stopped_at_limit = false;
  fs::path found = walk_for_config(path, limits, stopped_at_limit);
  if (!found.empty()) return location(found);
  std::string message = "config.json not found in " + path.string();
  if (stopped_at_limit) {
    message += " (search stopped after " + std::to_string(limits.max_entries) + " directory entries)";
  }
  throw ModelConfigError(message);
}

namespace {

// nlohmann's message without its "[json.exception...] parse error at line L, column C: " prefix.
std::string parse_error_reason(const std::string& what) {
  std::string reason = what;
  if (auto bracket = reason.find("] "); reason.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) {
    reason = reason.substr(bracket + 2);
  }
  if (reason.rfind("parse error", 0) == 0) {
    if (auto colon = reason.find(": "); colon != std::string::npos) reason = reason.substr(colon + 2);
  }
  return reason;
}

}  // namespace

nlohmann::json load_config_json(const fs::path& file) {
  std::error_code ec;
  std::uintmax_t size = fs::file_size(file, ec);
  if (ec) throw ModelConfigError("cannot read " + file.string() + ": " + ec.message());
  if (size > kMaxConfigJsonBytes) {
    throw ModelConfigError(file.string() + " is " + std::to_string(size) + " bytes, more than the " +
                           std::to_string(kMaxConfigJsonBytes) + " accepted for a model configuration");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ModelConfigError("cannot open " + file.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ModelConfigError("cannot read " + file.string());

  nlohmann::json config;
  try {
    config = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based index of the character at which parsing failed.
    std::size_t offset = e.byte == 0 ? 0 : std::min<std::size_t>(e.byte - 1, text.size());
    std::size_t line = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
    std::size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
    std::size_t column = (line_start == std::string::npos || offset == 0) ? offset + 1 : offset - line_start;
    throw ModelConfigError("malformed JSON in " + file.string() + " at line " + std::to_string(line) +
                           ", column " + std::to_string(column) + " (byte " + std::to_string(offset) +
                           "): " + parse_error_reason(e.what()));
  }
  if (!config.is_object()) {
    throw ModelConfigError(file.string() + " holds a JSON " + std::string(config.type_name()) +
                           ", expected an object");
  }
  return config;
}

}  // namespace modelagent
