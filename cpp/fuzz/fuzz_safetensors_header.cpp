// libFuzzer target: the input is a whole safetensors file image (8-byte little-endian header length N,
// N bytes of header JSON, then the data section), parsed the way read_safetensors_header parses a file.
// Any input must either parse or raise SafetensorsError. The header reader has its own JSON parser, so
// nlohmann::json serves as an independent oracle: JSON we call invalid must be invalid for it too, and
// a header we accept must be valid JSON holding exactly the tensors and metadata we returned.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "modelagent/errors.hpp"
#include "modelagent/safetensors.hpp"

namespace {

void check_against_oracle(std::string_view header, const modelagent::SafetensorsHeader& parsed, uint64_t data_size) {
  if (header.find('\0') != std::string_view::npos) __builtin_trap();  // a raw NUL is never valid JSON
  nlohmann::json doc = nlohmann::json::parse(header.begin(), header.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) __builtin_trap();
  uint64_t covered = 0;
  size_t tensors = 0;
  for (const auto& t : parsed.tensors) {
    auto it = doc.find(t.name);
    if (it == doc.end() || t.name == "__metadata__") __builtin_trap();
    if (it->at("dtype").get<std::string>() != t.dtype) __builtin_trap();
    if (it->at("shape").get<std::vector<uint64_t>>() != t.shape) __builtin_trap();
    auto offsets = it->at("data_offsets").get<std::vector<uint64_t>>();
    if (offsets.size() != 2 || offsets[0] != t.data_begin || offsets[1] != t.data_end) __builtin_trap();
    if (t.data_begin > t.data_end || t.data_end > data_size) __builtin_trap();
    covered += t.data_end - t.data_begin;
    ++tensors;
  }
  if (covered != data_size) __builtin_trap();
  auto meta = doc.find("__metadata__");
  if (tensors + (meta != doc.end()) != doc.size()) __builtin_trap();
  if (meta != doc.end() && !meta->is_null()) {
    if (meta->get<std::map<std::string, std::string>>() != parsed.metadata) __builtin_trap();
  } else if (!parsed.metadata.empty()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > size - 8) return 0;
  std::string_view header(reinterpret_cast<const char*>(data) + 8, n);
  const uint64_t data_size = size - 8 - n;
  try {
    check_against_oracle(header, modelagent::parse_safetensors_header(header, data_size, "fuzz-input"), data_size);
  } catch (const modelagent::SafetensorsError& e) {
    // nlohmann skips a leading byte order mark and stops at a NUL byte; JSON allows neither.
    const bool quirk = header.substr(0, 3) == "\xEF\xBB\xBF" || header.find('\0') != std::string_view::npos;
    const bool syntax = std::string_view(e.what()).rfind("fuzz-input: header is not valid JSON at byte offset", 0) == 0;
    if (!quirk && syntax &&
        nlohmann::json::accept(header.begin(), header.end())) {
      __builtin_trap();
    }
  }
  return 0;
}
