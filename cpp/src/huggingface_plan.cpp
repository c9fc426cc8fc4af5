// File selection (include/exclude patterns, default exclusion of duplicate weight formats) and the
// download plan for a Hugging Face commit.

#include <algorithm>
#include <set>
#include <string>

#include "modelagent/glob_match.hpp"
#include "modelagent/huggingface.hpp"

namespace modelagent::hf {

namespace {

// Weight formats that duplicate safetensors weights living in the same directory.
constexpr const char* kDuplicateExtensions[] = {".bin",  ".pt",        ".pth",  ".ckpt",   ".h5",     ".msgpack",
                                                ".ot",   ".onnx",      ".onnx_data", ".gguf", ".tflite", ".mlmodel"};
// Top-level folders holding alternative exports of the same model.
constexpr const char* kDuplicateFolders[] = {"original/", "onnx/", "openvino/", "coreml/"};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool in_duplicate_folder(const std::string& path) {
  for (const char* folder : kDuplicateFolders) {
    if (path.rfind(folder, 0) == 0) return true;
  }
  return false;
}

bool is_consolidated(const std::string& path) { return base_of(path).rfind("consolidated", 0) == 0; }

// Where the primary (Hugging Face format) safetensors weights are.
class WeightLayout {
 public:
  explicit WeightLayout(const std::vector<RepoFile>& files) {
    for (const auto& f : files) {
      if (!ends_with(f.path, ".safetensors") || is_consolidated(f.path) || in_duplicate_folder(f.path)) continue;
      any_ = true;
      dirs_.insert(dir_of(f.path));
    }
  }

  bool duplicate(const std::string& path) const {
    if (!any_) return false;
    if (in_duplicate_folder(path)) return true;
    if (!dirs_.count(dir_of(path))) return false;
    if (ends_with(path, ".safetensors")) return is_consolidated(path);
    for (const char* ext : kDuplicateExtensions) {
      if (ends_with(path, ext)) return true;
    }
    return false;
  }

 private:
  bool any_ = false;
  std::set<std::string> dirs_;
};

bool is_reserved(const std::string& path) {
  const std::string reserved = kReservedDirectory;
  return path == reserved || path.rfind(reserved + "/", 0) == 0;
}

}  // namespace

bool is_duplicate_weight_format(const std::string& path, const std::vector<RepoFile>& files) {
  return WeightLayout(files).duplicate(path);
}

Selection select_files(const std::vector<RepoFile>& files, const FileFilter& filter) {
  for (const auto& p : filter.include) validate_glob(p);
  for (const auto& p : filter.exclude) validate_glob(p);
  WeightLayout layout(files);
  Selection out;
  for (const auto& file : files) {
    if (is_reserved(file.path)) {
      out.excluded.push_back({file.path, "reserved path"});
      continue;
    }
    bool explicitly_included = !filter.include.empty() && glob_match_any(filter.include, file.path);
    if (!filter.include.empty() && !explicitly_included) {
      out.excluded.push_back({file.path, "not included"});
      continue;
    }
    auto hit = std::find_if(filter.exclude.begin(), filter.exclude.end(),
                            [&](const std::string& p) { return glob_match(p, file.path); });
    if (hit != filter.exclude.end()) {
      out.excluded.push_back({file.path, "excluded by pattern '" + *hit + "'"});
      continue;
    }
    if (filter.default_excludes && !explicitly_included && layout.duplicate(file.path)) {
      out.excluded.push_back({file.path, "duplicate weight format"});
      continue;
    }
    out.selected.push_back(file);
  }
  return out;
}

DownloadPlan build_plan(const std::string& endpoint, const std::string& repo_id, const std::string& commit,
                        const std::vector<RepoFile>& files, const std::string& token) {
  DownloadPlan plan;
  plan.files.reserve(files.size());
  for (const auto& file : files) {
    PlannedFile planned;
    planned.relative_path = file.path;
    planned.url = resolve_url(endpoint, repo_id, commit, file.path);
    if (!token.empty()) planned.headers.emplace_back("Authorization", "Bearer " + token);
    planned.size = file.size;
    planned.digest = file.digest();
    plan.files.push_back(std::move(planned));
  }
  return plan;
}

}  // namespace modelagent::hf
