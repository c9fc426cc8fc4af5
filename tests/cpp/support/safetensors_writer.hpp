#pragma once
// Writes synthetic safetensors files for the header and weights tests. Tensor data is a sparse hole:
// only headers are ever read.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelagent/errors.hpp"
#include "modelagent/safetensors.hpp"

namespace testsupport {

struct Spec {
  std::string name, dtype;
  std::vector<uint64_t> shape;
};

// A header JSON with contiguous data offsets; data_size receives the data section length.
inline std::string make_header(const std::vector<Spec>& specs, uint64_t& data_size) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& s : specs) {
    uint64_t n = 1;
    for (auto d : s.shape) n *= d;
    uint64_t bytes = (n * modelagent::dtype_bits(s.dtype) + 7) / 8;
    h[s.name] = {{"dtype", s.dtype}, {"shape", s.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  data_size = offset;
  return h.dump();
}

// Writes the 8-byte length prefix (declared_length) and header, then extends the file sparsely by data_size.
inline void write_raw(const std::filesystem::path& file, uint64_t declared_length, const std::string& header,
                      uint64_t data_size) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((declared_length >> (8 * i)) & 0xff);
  bytes += header;
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  ASSERT_EQ(::truncate(file.c_str(), static_cast<off_t>(bytes.size() + data_size)), 0);
}

inline void write_file(const std::filesystem::path& file, const std::string& header, uint64_t data_size) {
  write_raw(file, header.size(), header, data_size);
}

// A complete, valid safetensors file holding specs.
inline void write_shard(const std::filesystem::path& file, const std::vector<Spec>& specs) {
  uint64_t data_size = 0;
  std::string header = make_header(specs, data_size);
  write_file(file, header, data_size);
}

// Runs fn, expects SafetensorsError, and checks that its message contains every fragment.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no SafetensorsError thrown; expected one mentioning " << fragments.front();
  } catch (const modelagent::SafetensorsError& e) {
    std::string msg = e.what();
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

}  // namespace testsupport
