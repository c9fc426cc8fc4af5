// libFuzzer target: the input is a whole safetensors file image (8-byte little-endian header length N,
// N bytes of header JSON, then the data section), parsed the way read_safetensors_header parses a file.
// Any input must either parse or raise SafetensorsError. An accepted header must keep every promise of
// the API (offsets, sizes, exact tiling, unique names) and survive a round trip: written back out as
// JSON, it parses to the same result. A rejection must name the input and stay short and printable.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "modelagent/errors.hpp"
#include "modelagent/safetensors.hpp"

namespace {

using modelagent::SafetensorsHeader;

constexpr const char* kLabel = "fuzz-input";

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_accepted(const SafetensorsHeader& h, std::string_view header, uint64_t data_size) {
  check(h.file == kLabel && h.header_length == header.size());
  std::unordered_set<std::string_view> names;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& t : h.tensors) {
    check(t.name != "__metadata__" && names.insert(t.name).second);
    uint64_t count = 1;
    for (uint64_t d : t.shape) check(!__builtin_mul_overflow(count, d, &count));
    check(count == t.element_count);
    const unsigned bits = modelagent::dtype_bits(t.dtype);
    check(t.data_begin <= t.data_end && t.data_end <= data_size);
    check(t.data_end - t.data_begin == (static_cast<unsigned __int128>(count) * bits + 7) / 8);
    ranges.emplace_back(t.data_begin, t.data_end);
  }
  // The byte ranges tile [0, data_size): no overlap, no hole.
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    check(begin == covered);
    covered = end;
  }
  check(covered == data_size);
}

// The header rebuilt from the parsed result, in the parsed tensor order.
std::string reserialize(const SafetensorsHeader& h) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (!h.metadata.empty()) j["__metadata__"] = h.metadata;
  for (const auto& t : h.tensors) {
    j[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {t.data_begin, t.data_end}}};
  }
  return j.dump();
}

bool same(const SafetensorsHeader& a, const SafetensorsHeader& b) {
  if (a.tensors.size() != b.tensors.size() || a.metadata != b.metadata) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data_begin != y.data_begin ||
        x.data_end != y.data_end || x.element_count != y.element_count) {
      return false;
    }
  }
  return true;
}

void check_rejected(std::string_view message, size_t header_size) {
  check(message.rfind(std::string(kLabel) + ": ", 0) == 0);
  check(message.size() < 4096);  // names and offending text are quoted, shortened
  for (char c : message) check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
  constexpr std::string_view kSyntax = "header is not valid JSON at byte offset ";
  if (auto at = message.find(kSyntax); at != std::string_view::npos) {
    check(std::strtoull(message.data() + at + kSyntax.size(), nullptr, 10) <= header_size);
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
  SafetensorsHeader parsed;
  try {
    parsed = modelagent::parse_safetensors_header(header, data_size, kLabel);
  } catch (const modelagent::SafetensorsError& e) {
    check_rejected(e.what(), header.size());
    return 0;
  }
  check_accepted(parsed, header, data_size);
  const std::string again = reserialize(parsed);
  try {
    check(same(parsed, modelagent::parse_safetensors_header(again, data_size, kLabel)));
  } catch (const modelagent::SafetensorsError&) {
    __builtin_trap();  // what we accepted, written back out, must be accepted too
  }
  return 0;
}
