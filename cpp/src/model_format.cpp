// The weight format of a model directory and the files that make up its size on disk.

#include <algorithm>
#include <array>
#include <fstream>
#include <string>
#include <system_error>

#include "model_json.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/model_metadata.hpp"
#include "modelagent/weights.hpp"

namespace modelagent {

using namespace model_json;
namespace fs = std::filesystem;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Regular files directly in dir (symlinks to files included, as in a Hugging Face cache snapshot),
// sorted by name. A missing or unreadable directory has none.
std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return files;
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) break;
    std::error_code fec;
    if (it->is_regular_file(fec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

template <typename Pred>
std::vector<fs::path> select(const std::vector<fs::path>& files, Pred pred) {
  std::vector<fs::path> out;
  for (const fs::path& f : files) {
    if (pred(f.filename().string())) out.push_back(f);
  }
  return out;
}

// Files a training run leaves beside the weights; they are not the model.
bool trainer_state(const std::string& name) {
  return name == "training_args.bin" || name.rfind("optimizer.", 0) == 0 || name.rfind("scheduler.", 0) == 0 ||
         name.rfind("scaler.", 0) == 0 || name.rfind("rng_state", 0) == 0;
}

WeightFiles make(NameVersion format, std::vector<fs::path> files) {
  WeightFiles out;
  out.format = std::move(format);
  for (const fs::path& f : files) {
    std::error_code ec;
    std::uintmax_t size = fs::file_size(f, ec);
    if (ec) throw ModelConfigError("cannot read the size of weight file " + f.string() + ": " + ec.message());
    out.total_bytes += size;
  }
  out.files = std::move(files);
  return out;
}

}  // namespace

uint32_t read_gguf_version(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ModelConfigError("cannot open GGUF file " + file.string());
  std::array<unsigned char, 8> head{};
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  if (in.gcount() != static_cast<std::streamsize>(head.size())) {
    throw ModelConfigError(file.string() + " is too short for a GGUF header (" + std::to_string(in.gcount()) +
                           " bytes)");
  }
  if (head[0] != 'G' || head[1] != 'G' || head[2] != 'U' || head[3] != 'F') {
    throw ModelConfigError(file.string() + " is not a GGUF file (the magic bytes are not \"GGUF\")");
  }
  uint32_t version = static_cast<uint32_t>(head[4]) | static_cast<uint32_t>(head[5]) << 8 |
                     static_cast<uint32_t>(head[6]) << 16 | static_cast<uint32_t>(head[7]) << 24;
  if (version == 0) throw ModelConfigError(file.string() + " has GGUF version 0, which does not exist");
  return version;
}

WeightFiles detect_weight_files(const fs::path& dir, const json& config) {
  std::vector<fs::path> files = files_in(dir);

  auto engines = select(files, [](const std::string& n) { return ends_with(n, ".engine"); });
  if (object_member(config, "pretrained_config") || object_member(config, "build_config") || !engines.empty()) {
    return make(name_version("tensorrtllm", string_member(config, "version")), std::move(engines));
  }

  auto safetensors = find_safetensors_files(dir);
  if (!safetensors.empty()) return make(name_version("safetensors", "1.0.0"), std::move(safetensors));

  auto pytorch = select(files, [](const std::string& n) {
    return (ends_with(n, ".bin") || ends_with(n, ".pt") || ends_with(n, ".pth")) && !trainer_state(n);
  });
  if (!pytorch.empty()) return make(name_version("pytorch"), std::move(pytorch));

  auto gguf = select(files, [](const std::string& n) { return ends_with(n, ".gguf"); });
  if (!gguf.empty()) {
    std::string version = std::to_string(read_gguf_version(gguf.front()));
    return make(name_version("gguf", version), std::move(gguf));
  }

  std::vector<fs::path> onnx;
  bool has_graph = false;
  for (const fs::path& d : {dir, dir / "onnx"}) {
    for (const fs::path& f : files_in(d)) {
      std::string n = f.filename().string();
      if (ends_with(n, ".onnx")) has_graph = true;
      if (ends_with(n, ".onnx") || ends_with(n, ".onnx_data") || ends_with(n, ".onnx.data")) onnx.push_back(f);
    }
  }
  if (has_graph) return make(name_version("onnx"), std::move(onnx));
  return {};
}

}  // namespace modelagent
