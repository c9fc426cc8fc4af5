#pragma once
// Reading the header of a safetensors file: an 8-byte little-endian length N, then N bytes of JSON
// describing every tensor (dtype, shape, byte range in the data section that follows the header).

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace modelagent {

struct TensorInfo {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  // Byte range [data_begin, data_end) relative to the start of the data section.
  uint64_t data_begin = 0, data_end = 0;
  // Product of shape; 1 for a scalar (shape []), 0 when any dimension is 0.
  uint64_t element_count = 0;
};

struct SafetensorsHeader {
  std::string file;
  uint64_t file_size = 0;
  uint64_t header_length = 0;  // N, the JSON length (the data section starts at 8 + N)
  std::vector<TensorInfo> tensors;  // in header (JSON key) order
  std::map<std::string, std::string> metadata;  // the "__metadata__" object
};

// Largest header accepted (the safetensors format itself caps headers at 100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull * 1024 * 1024;

// One bounded pread of 8 + N bytes (never the tensor data). Throws SafetensorsError naming the file.
SafetensorsHeader read_safetensors_header(const std::filesystem::path& file);

// Validates a header JSON against the size of the data section; file_label appears in errors.
// This is the fuzz entry point: any input either parses or throws SafetensorsError.
SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_size,
                                           const std::string& file_label);

// Bits per element of a safetensors dtype name (F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL,
// F8_E4M3 F8_E5M2 F8_E8M0 F4 F6_E2M3 F6_E3M2 and the rest). Throws SafetensorsError on an unknown name.
unsigned dtype_bits(std::string_view dtype);

}  // namespace modelagent
