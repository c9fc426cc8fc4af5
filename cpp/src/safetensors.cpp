// Safetensors header reading and validation.
//
// The header JSON is consumed through a SAX handler that keeps only what a TensorInfo needs, so a
// hostile 100 MiB header never becomes a JSON DOM, and every rejection can name the tensor at fault.

#include "modelagent/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "modelagent/errors.hpp"

namespace modelagent {

namespace {

// A tensor or key name from an untrusted header, made safe and short enough for an error message.
std::string printable(std::string_view s) {
  constexpr size_t kMax = 200;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

std::string range_text(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// Bytes occupied by `elements` values of `bits` each, rounded up to whole bytes; false on overflow.
bool storage_bytes(uint64_t elements, unsigned bits, uint64_t& bytes) {
  unsigned __int128 total_bits = static_cast<unsigned __int128>(elements) * bits;
  unsigned __int128 b = (total_bits + 7) / 8;
  if (b > UINT64_MAX) return false;
  bytes = static_cast<uint64_t>(b);
  return true;
}

using json = nlohmann::json;

class HeaderHandler : public nlohmann::json_sax<json> {
 public:
  HeaderHandler(const std::string& label, uint64_t data_size, SafetensorsHeader& out)
      : label_(label), data_size_(data_size), out_(out) {}

  bool null() override { return scalar("null"); }
  bool boolean(bool) override { return scalar("a boolean"); }
  bool number_integer(number_integer_t v) override {
    if (skip_ == 0 && level_ == 3) {
      fail_field("has the negative value " + std::to_string(v));
    }
    return scalar("a number");
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (skip_ == 0 && level_ == 3) {
      element(v);
      return true;
    }
    return scalar("a number");
  }
  bool number_float(number_float_t, const string_t& text) override {
    if (skip_ == 0 && level_ == 3) {
      fail_field("has the value " + printable(text) + ", which is not an integer in 0..2^64-1");
    }
    return scalar("a number");
  }
  bool string(string_t& s) override {
    if (skip_ > 0) return true;
    if (level_ == 2 && in_metadata_) {
      out_.metadata[metadata_key_] = std::move(s);
      return true;
    }
    if (level_ == 2 && field_ == Field::Dtype) {
      current_.dtype = std::move(s);
      return true;
    }
    return scalar("a string");
  }
  bool binary(binary_t&) override { return scalar("binary data"); }

  bool start_object(std::size_t) override { return container_start(true); }
  bool start_array(std::size_t) override { return container_start(false); }
  bool end_object() override { return container_end(); }
  bool end_array() override { return container_end(); }

  bool key(string_t& k) override {
    if (skip_ > 0) return true;
    if (level_ == 1) {
      entry_name_ = std::move(k);
      in_metadata_ = entry_name_ == "__metadata__";
      return true;
    }
    if (in_metadata_) {
      metadata_key_ = std::move(k);
      return true;
    }
    if (k == "dtype") {
      field_ = Field::Dtype;
    } else if (k == "shape") {
      field_ = Field::Shape;
    } else if (k == "data_offsets") {
      field_ = Field::Offsets;
    } else {
      field_ = Field::Unknown;
      return true;
    }
    unsigned bit = 1u << static_cast<unsigned>(field_);
    if (seen_fields_ & bit) fail_tensor("field \"" + k + "\" appears twice");
    seen_fields_ |= bit;
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    // nlohmann's text reads "[json.exception.parse_error.101] parse error at line 1, column 7: <reason>";
    // keep the reason and report a 0-based byte offset into the header instead of line and column.
    std::string what = ex.what();
    if (auto colon = what.find(": "); what.rfind("[json.exception", 0) == 0 && colon != std::string::npos) {
      what.erase(0, colon + 2);
    }
    const size_t offset = position > 0 ? position - 1 : 0;
    throw SafetensorsError(label_ + ": header is not valid JSON at byte offset " + std::to_string(offset) + ": " +
                           what);
  }

 private:
  enum class Field : unsigned { None, Dtype, Shape, Offsets, Unknown };

  [[noreturn]] void fail(const std::string& message) const { throw SafetensorsError(label_ + ": " + message); }
  [[noreturn]] void fail_tensor(const std::string& message) const {
    fail("tensor " + printable(entry_name_) + ": " + message);
  }
  [[noreturn]] void fail_field(const std::string& message) const {
    fail_tensor(std::string(field_ == Field::Shape ? "\"shape\"" : "\"data_offsets\"") + " " + message);
  }

  // Any value that is not consumed by a more specific handler above lands here.
  bool scalar(const char* kind) {
    if (skip_ > 0) return true;
    switch (level_) {
      case 0:
        fail(std::string("header must be a JSON object, found ") + kind);
      case 1:
        if (in_metadata_) {
          if (std::strcmp(kind, "null") == 0) return true;
          fail(std::string("\"__metadata__\" must be an object of strings, found ") + kind);
        }
        fail_tensor(std::string("entry must be an object, found ") + kind);
      case 2:
        if (in_metadata_) {
          fail("\"__metadata__\" value of " + printable(metadata_key_) + " must be a string, found " + kind);
        }
        switch (field_) {
          case Field::Dtype:
            fail_tensor(std::string("\"dtype\" must be a string, found ") + kind);
          case Field::Shape:
          case Field::Offsets:
            fail_field(std::string("must be an array of integers, found ") + kind);
          default:
            return true;
        }
      default:
        fail_field(std::string("must contain only non-negative integers, found ") + kind);
    }
  }

  void element(uint64_t v) {
    if (field_ == Field::Shape) {
      current_.shape.push_back(v);
    } else {
      if (offsets_seen_ >= 2) fail_field("must have exactly 2 entries [begin, end]");
      (offsets_seen_ == 0 ? current_.data_begin : current_.data_end) = v;
      ++offsets_seen_;
    }
  }

  bool container_start(bool object) {
    const char* kind = object ? "an object" : "an array";
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (level_) {
      case 0:
        if (!object) fail("header must be a JSON object, found an array");
        level_ = 1;
        return true;
      case 1:
        if (!object) return scalar(kind);
        level_ = 2;
        field_ = Field::None;
        if (!in_metadata_) {
          current_ = TensorInfo{};
          current_.name = entry_name_;
          seen_fields_ = 0;
          offsets_seen_ = 0;
        }
        return true;
      case 2:
        if (in_metadata_) return scalar(kind);
        if (field_ == Field::Unknown) {
          skip_ = 1;
          return true;
        }
        if (object || field_ == Field::Dtype) return scalar(kind);
        level_ = 3;
        return true;
      default:
        return scalar(kind);
    }
  }

  bool container_end() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    if (level_ == 3) {
      if (field_ == Field::Offsets && offsets_seen_ != 2) {
        fail_field("must have exactly 2 entries [begin, end], found " + std::to_string(offsets_seen_));
      }
      level_ = 2;
      return true;
    }
    if (level_ == 2) {
      if (!in_metadata_) finish_tensor();
      in_metadata_ = false;
      level_ = 1;
      return true;
    }
    level_ = 0;
    return true;
  }

  void finish_tensor() {
    for (auto [field, name] : {std::pair{Field::Dtype, "dtype"}, std::pair{Field::Shape, "shape"},
                               std::pair{Field::Offsets, "data_offsets"}}) {
      if (!(seen_fields_ & (1u << static_cast<unsigned>(field)))) {
        fail_tensor(std::string("field \"") + name + "\" is missing");
      }
    }
    unsigned bits = 0;
    try {
      bits = dtype_bits(current_.dtype);
    } catch (const SafetensorsError&) {
      fail_tensor("unknown dtype " + printable(current_.dtype));
    }
    uint64_t count = 1;
    for (uint64_t dim : current_.shape) {
      if (__builtin_mul_overflow(count, dim, &count)) {
        fail_tensor("shape " + shape_text() + " has more than 2^64-1 elements");
      }
    }
    current_.element_count = count;
    const uint64_t begin = current_.data_begin, end = current_.data_end;
    if (begin > end) fail_tensor("data_offsets " + range_text(begin, end) + " begin after they end");
    if (end > data_size_) {
      fail_tensor("data_offsets " + range_text(begin, end) + " lie outside the data section of " +
                  std::to_string(data_size_) + " bytes");
    }
    uint64_t expected = 0;
    if (!storage_bytes(count, bits, expected)) {
      fail_tensor("shape " + shape_text() + " of " + current_.dtype + " needs more than 2^64-1 bytes");
    }
    if (end - begin != expected) {
      fail_tensor("data_offsets " + range_text(begin, end) + " hold " + std::to_string(end - begin) +
                  " bytes, but shape " + shape_text() + " of " + current_.dtype + " needs " +
                  std::to_string(expected));
    }
    out_.tensors.push_back(std::move(current_));
  }

  std::string shape_text() const {
    std::string s = "[";
    for (size_t i = 0; i < current_.shape.size(); ++i) {
      if (i) s += ", ";
      if (i == 8 && current_.shape.size() > 9) {
        s += "... " + std::to_string(current_.shape.size()) + " dims";
        break;
      }
      s += std::to_string(current_.shape[i]);
    }
    return s + "]";
  }

  const std::string& label_;
  const uint64_t data_size_;
  SafetensorsHeader& out_;
  int level_ = 0;       // 0 outside, 1 in the top object, 2 in an entry, 3 in shape/data_offsets
  size_t skip_ = 0;     // nesting depth inside an ignored (unknown) tensor field
  bool in_metadata_ = false;
  Field field_ = Field::None;
  unsigned seen_fields_ = 0;
  unsigned offsets_seen_ = 0;
  std::string entry_name_;
  std::string metadata_key_;
  TensorInfo current_;
};

// Tensor names must be unique and the tensors must tile the data section exactly, as the safetensors
// format requires: no overlaps (one byte claimed twice), no holes, nothing after the last tensor.
void check_layout(const SafetensorsHeader& h, uint64_t data_size, const std::string& label) {
  std::vector<size_t> order(h.tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return h.tensors[a].name < h.tensors[b].name; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& name = h.tensors[order[i]].name;
    if (name == h.tensors[order[i - 1]].name) {
      throw SafetensorsError(label + ": tensor " + printable(name) + " appears more than once in the header");
    }
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto &x = h.tensors[a], &y = h.tensors[b];
    return x.data_begin != y.data_begin ? x.data_begin < y.data_begin : x.data_end < y.data_end;
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (size_t i : order) {
    const auto& t = h.tensors[i];
    if (t.data_begin < covered) {
      throw SafetensorsError(label + ": tensor " + printable(t.name) + " data " + range_text(t.data_begin, t.data_end) +
                             " overlaps tensor " + printable(previous->name) + " data " +
                             range_text(previous->data_begin, previous->data_end));
    }
    if (t.data_begin > covered) {
      throw SafetensorsError(label + ": data section bytes " + range_text(covered, t.data_begin) +
                             " before tensor " + printable(t.name) + " belong to no tensor");
    }
    covered = t.data_end;
    previous = &t;
  }
  if (covered != data_size) {
    throw SafetensorsError(label + ": the tensors cover " + std::to_string(covered) +
                           " bytes but the data section has " + std::to_string(data_size) +
                           " (file truncated or has trailing bytes)");
  }
}

// Reads exactly `size` bytes at `offset`, retrying short reads; throws if the file ends first.
void pread_exact(int fd, char* buf, size_t size, uint64_t offset, const std::string& label) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, buf + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SafetensorsError(label + ": read failed: " + std::strerror(errno));
    }
    if (n == 0) throw SafetensorsError(label + ": file ended while reading the header (was it truncated?)");
    done += static_cast<size_t>(n);
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

unsigned dtype_bits(std::string_view dtype) {
  struct Entry {
    std::string_view name;
    unsigned bits;
  };
  static constexpr Entry kTable[] = {
      {"BOOL", 8},        {"F4", 4},          {"F6_E2M3", 6},      {"F6_E3M2", 6},      {"U8", 8},
      {"I8", 8},          {"F8_E5M2", 8},     {"F8_E4M3", 8},      {"F8_E8M0", 8},      {"F8_E4M3FNUZ", 8},
      {"F8_E5M2FNUZ", 8}, {"I16", 16},        {"U16", 16},         {"F16", 16},         {"BF16", 16},
      {"I32", 32},        {"U32", 32},        {"F32", 32},         {"C64", 64},         {"F64", 64},
      {"I64", 64},        {"U64", 64},
  };
  for (const auto& e : kTable) {
    if (e.name == dtype) return e.bits;
  }
  throw SafetensorsError("unknown safetensors dtype " + printable(dtype));
}

SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_size,
                                           const std::string& file_label) {
  SafetensorsHeader header;
  header.file = file_label;
  header.header_length = header_json.size();
  HeaderHandler handler(file_label, data_size, header);
  json::sax_parse(header_json.begin(), header_json.end(), &handler);
  check_layout(header, data_size, file_label);
  return header;
}

SafetensorsHeader read_safetensors_header(const std::filesystem::path& file) {
  const std::string label = file.string();
  // O_NONBLOCK: opening a FIFO planted under a model's name must fail below, not wait for a writer.
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) throw SafetensorsError(label + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SafetensorsError(label + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw SafetensorsError(label + ": not a regular file");
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    throw SafetensorsError(label + ": file is " + std::to_string(file_size) +
                           " bytes, too short for the 8-byte header length");
  }
  unsigned char prefix[8];
  pread_exact(fd.get(), reinterpret_cast<char*>(prefix), sizeof prefix, 0, label);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix[i];
  if (n > kMaxSafetensorsHeaderBytes) {
    throw SafetensorsError(label + ": header length " + std::to_string(n) + " exceeds the limit of " +
                           std::to_string(kMaxSafetensorsHeaderBytes) + " bytes (100 MiB)");
  }
  if (n > file_size - 8) {
    throw SafetensorsError(label + ": header length " + std::to_string(n) + " exceeds the " +
                           std::to_string(file_size - 8) + " bytes that follow it in the file");
  }
  std::string text(n, '\0');
  pread_exact(fd.get(), text.data(), text.size(), 8, label);
  SafetensorsHeader header = parse_safetensors_header(text, file_size - 8 - n, label);
  header.file_size = file_size;
  return header;
}

}  // namespace modelagent
