// libFuzzer target: the input is a whole safetensors file image (8-byte little-endian header length N,
// N bytes of header JSON, then the data section), parsed the way read_safetensors_header parses a file.
// Any input must either parse or raise SafetensorsError; anything else is a bug.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "modelagent/errors.hpp"
#include "modelagent/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > size - 8) return 0;
  std::string_view header(reinterpret_cast<const char*>(data) + 8, n);
  try {
    auto parsed = modelagent::parse_safetensors_header(header, size - 8 - n, "fuzz-input");
    // Re-check the invariants every accepted header promises.
    uint64_t covered = 0;
    for (const auto& t : parsed.tensors) {
      if (t.data_begin > t.data_end || t.data_end > size - 8 - n) __builtin_trap();
      covered += t.data_end - t.data_begin;
    }
    if (covered != size - 8 - n) __builtin_trap();
  } catch (const modelagent::SafetensorsError&) {
  }
  return 0;
}
