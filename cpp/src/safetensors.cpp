// Safetensors header reading and validation.
//
// The header JSON is read by a small validating parser that keeps only what a TensorInfo needs, so a
// hostile 100 MiB header never becomes a JSON DOM, and every rejection can name the tensor at fault.

#include "modelagent/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <unordered_set>

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

// A validating JSON reader specialised for safetensors headers. It accepts exactly RFC 8259 JSON
// (UTF-8 checked, escapes and surrogate pairs decoded, no BOM) and walks the fixed schema directly:
// no DOM, iterative skipping of unknown values (so nesting depth costs no stack), and every rejection
// names the tensor at fault. Syntax errors report their 0-based byte offset in the header.
class HeaderParser {
 public:
  HeaderParser(std::string_view in, const std::string& label, uint64_t data_size, SafetensorsHeader& out)
      : in_(in), label_(label), data_size_(data_size), out_(out) {}

  void parse() {
    ws();
    if (peek() != '{') type_error("header must be a JSON object, found ");
    ++pos_;
    ws();
    if (peek() == '}') {
      ++pos_;
    } else {
      for (;;) {
        ws();
        read_string(entry_name_);
        expect_colon();
        ws();
        if (entry_name_ == "__metadata__") {
          if (seen_metadata_) fail("\"__metadata__\" appears more than once in the header");
          seen_metadata_ = true;
          metadata();
        } else {
          tensor();
        }
        if (!next_member('}')) break;
      }
    }
    ws();
    if (pos_ != in_.size()) syntax_error("unexpected content after the header object");
  }

 private:
  enum Field : unsigned { kDtype = 1, kShape = 2, kOffsets = 4 };

  [[noreturn]] void fail(const std::string& message) const { throw SafetensorsError(label_ + ": " + message); }
  [[noreturn]] void fail_tensor(const std::string& message) const {
    fail("tensor " + printable(entry_name_) + ": " + message);
  }
  [[noreturn]] void syntax_error(const std::string& what) const {
    fail("header is not valid JSON at byte offset " + std::to_string(pos_) + ": " + what);
  }
  // The value at pos_ has the wrong type: name its type, unless the value itself is malformed JSON,
  // which skip_value reports first.
  [[noreturn]] void type_error(const std::string& prefix) {
    const size_t start = pos_;
    skip_value();
    pos_ = start;
    const char c = in_[pos_];
    const char* kind = c == '{'   ? "an object"
                       : c == '[' ? "an array"
                       : c == '"' ? "a string"
                       : c == 't' || c == 'f' ? "a boolean"
                       : c == 'n'             ? "null"
                                              : "a number";
    fail(prefix + kind);
  }

  char peek() const { return pos_ < in_.size() ? in_[pos_] : '\0'; }
  void ws() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\n' || in_[pos_] == '\r' || in_[pos_] == '\t')) {
      ++pos_;
    }
  }
  void expect_colon() {
    ws();
    if (peek() != ':') {
      if (pos_ >= in_.size()) syntax_error("unexpected end of input");
      syntax_error("expected ':' after an object key");
    }
    ++pos_;
  }
  // After a member or element: true on ',', false on `close`.
  bool next_member(char close) {
    ws();
    const char c = peek();
    if (c == ',') {
      ++pos_;
      return true;
    }
    if (c == close) {
      ++pos_;
      return false;
    }
    if (pos_ >= in_.size()) syntax_error("unexpected end of input");
    syntax_error(std::string("expected ',' or '") + close + "'");
  }

  void metadata() {
    if (in_.compare(pos_, 4, "null") == 0) {
      pos_ += 4;
      return;
    }
    if (peek() != '{') type_error("\"__metadata__\" must be an object of strings, found ");
    ++pos_;
    ws();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    std::string key, value;
    do {
      ws();
      read_string(key);
      expect_colon();
      ws();
      if (peek() != '"') type_error("\"__metadata__\" value of " + printable(key) + " must be a string, found ");
      read_string(value);
      out_.metadata[key] = value;
    } while (next_member('}'));
  }

  void tensor() {
    if (peek() != '{') type_error("tensor " + printable(entry_name_) + ": entry must be an object, found ");
    ++pos_;
    TensorInfo t;
    unsigned seen = 0;
    ws();
    if (peek() == '}') {
      ++pos_;
    } else {
      std::string key;
      do {
        ws();
        read_string(key);
        expect_colon();
        ws();
        unsigned field = 0;
        if (key == "dtype") {
          field = kDtype;
        } else if (key == "shape") {
          field = kShape;
        } else if (key == "data_offsets") {
          field = kOffsets;
        }
        if (field == 0) {
          skip_value();
          continue;
        }
        if (seen & field) fail_tensor("field \"" + key + "\" appears twice");
        seen |= field;
        if (field == kDtype) {
          if (peek() != '"') type_error("tensor " + printable(entry_name_) + ": \"dtype\" must be a string, found ");
          read_string(t.dtype);
        } else if (field == kShape) {
          read_uint_array("\"shape\"", t.shape);
        } else {
          std::vector<uint64_t> offsets;
          read_uint_array("\"data_offsets\"", offsets);
          if (offsets.size() != 2) {
            fail_tensor("\"data_offsets\" must have exactly 2 entries [begin, end], found " +
                        std::to_string(offsets.size()));
          }
          t.data_begin = offsets[0];
          t.data_end = offsets[1];
        }
      } while (next_member('}'));
    }
    for (auto [field, name] : {std::pair{kDtype, "dtype"}, std::pair{kShape, "shape"},
                               std::pair{kOffsets, "data_offsets"}}) {
      if (!(seen & field)) fail_tensor(std::string("field \"") + name + "\" is missing");
    }
    t.name = entry_name_;
    validate(t);
    out_.tensors.push_back(std::move(t));
  }

  void read_uint_array(const std::string& field, std::vector<uint64_t>& out) {
    const std::string where = "tensor " + printable(entry_name_) + ": " + field;
    if (peek() != '[') type_error(where + " must be an array of integers, found ");
    ++pos_;
    ws();
    if (peek() == ']') {
      ++pos_;
      return;
    }
    do {
      ws();
      const char c = peek();
      if (c != '-' && (c < '0' || c > '9')) {
        type_error(where + " must contain only non-negative integers, found ");
      }
      const size_t start = pos_;
      bool integral = true;
      scan_number(integral);
      std::string_view text = in_.substr(start, pos_ - start);
      if (text[0] == '-') fail_tensor(field + " has the negative value " + printable(text));
      uint64_t v = 0;
      bool fits = integral;
      for (size_t i = 0; fits && i < text.size(); ++i) {
        fits = !__builtin_mul_overflow(v, 10, &v) && !__builtin_add_overflow(v, uint64_t(text[i] - '0'), &v);
      }
      if (!fits) fail_tensor(field + " has the value " + printable(text) + ", which is not an integer in 0..2^64-1");
      out.push_back(v);
    } while (next_member(']'));
  }

  // Advances over one JSON number; integral is cleared when it has a fraction or exponent.
  void scan_number(bool& integral) {
    auto digits = [&] {
      const size_t start = pos_;
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
      return pos_ - start;
    };
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (digits() == 0) {
      syntax_error("invalid number");
    }
    if (peek() == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) syntax_error("invalid number: digits must follow '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      integral = false;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) syntax_error("invalid number: digits must follow the exponent");
    }
  }

  void literal(std::string_view word) {
    if (in_.compare(pos_, word.size(), word) != 0) syntax_error("invalid literal");
    pos_ += word.size();
  }

  // Skips any JSON value, validating it, with an explicit stack instead of recursion.
  void skip_value() {
    std::vector<char> open;
    std::string scratch;
    for (;;) {
      ws();
      const char c = peek();
      if (c == '{' || c == '[') {
        ++pos_;
        ws();
        if (peek() == (c == '{' ? '}' : ']')) {
          ++pos_;  // an empty container is a complete value
        } else {
          open.push_back(c);
          if (c == '{') {
            read_string(scratch);
            expect_colon();
          }
          continue;
        }
      } else if (c == '"') {
        read_string(scratch);
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        bool integral = true;
        scan_number(integral);
      } else if (c == 't') {
        literal("true");
      } else if (c == 'f') {
        literal("false");
      } else if (c == 'n') {
        literal("null");
      } else if (pos_ >= in_.size()) {
        syntax_error("unexpected end of input");
      } else {
        syntax_error("unexpected character " + printable(std::string_view(&c, 1)));
      }
      // A value is complete: close every container it completes, or move to the next member.
      for (;;) {
        if (open.empty()) return;
        const char close = open.back() == '{' ? '}' : ']';
        if (next_member(close)) {
          if (open.back() == '{') {
            ws();
            read_string(scratch);
            expect_colon();
          }
          break;
        }
        open.pop_back();
      }
    }
  }

  void read_string(std::string& out) {
    out.clear();
    if (peek() != '"') {
      if (pos_ >= in_.size()) syntax_error("unexpected end of input");
      syntax_error("expected a string");
    }
    ++pos_;
    for (;;) {
      const size_t start = pos_;
      while (pos_ < in_.size()) {
        const auto c = static_cast<unsigned char>(in_[pos_]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++pos_;
      }
      out.append(in_.data() + start, pos_ - start);
      if (pos_ >= in_.size()) syntax_error("unterminated string");
      const auto c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') {
        ++pos_;
        return;
      }
      if (c < 0x20) syntax_error("control character in a string must be escaped");
      if (c >= 0x80) {
        utf8_sequence(out);
      } else {
        escape(out);
      }
    }
  }

  // Copies one well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF).
  void utf8_sequence(std::string& out) {
    const auto b0 = static_cast<unsigned char>(in_[pos_]);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      syntax_error("invalid UTF-8 byte in a string");
    }
    for (size_t i = 1; i < len; ++i) {
      if (pos_ + i >= in_.size()) syntax_error("truncated UTF-8 sequence in a string");
      const auto b = static_cast<unsigned char>(in_[pos_ + i]);
      if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) {
        pos_ += i;
        syntax_error("invalid UTF-8 continuation byte in a string");
      }
    }
    out.append(in_.data() + pos_, len);
    pos_ += len;
  }

  unsigned hex4() {
    if (pos_ + 4 > in_.size()) syntax_error("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = in_[pos_];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= unsigned(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= unsigned(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= unsigned(c - 'A' + 10);
      } else {
        syntax_error("invalid hex digit in a \\u escape");
      }
      ++pos_;
    }
    return v;
  }

  void escape(std::string& out) {
    ++pos_;  // the backslash
    if (pos_ >= in_.size()) syntax_error("unterminated string");
    const char e = in_[pos_];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        ++pos_;
        unsigned cp = hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF) syntax_error("unpaired low surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (in_.compare(pos_, 2, "\\u") != 0) syntax_error("high surrogate not followed by a low surrogate");
          pos_ += 2;
          const unsigned low = hex4();
          if (low < 0xDC00 || low > 0xDFFF) syntax_error("high surrogate not followed by a low surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, cp);
        return;
      }
      default:
        syntax_error("invalid escape " + printable(std::string_view(&e, 1)));
    }
    ++pos_;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  void validate(TensorInfo& t) const {
    unsigned bits = 0;
    try {
      bits = dtype_bits(t.dtype);
    } catch (const SafetensorsError&) {
      fail_tensor("unknown dtype " + printable(t.dtype));
    }
    uint64_t count = 1;
    for (uint64_t dim : t.shape) {
      if (__builtin_mul_overflow(count, dim, &count)) {
        fail_tensor("shape " + shape_text(t.shape) + " has more than 2^64-1 elements");
      }
    }
    t.element_count = count;
    const uint64_t begin = t.data_begin, end = t.data_end;
    if (begin > end) fail_tensor("data_offsets " + range_text(begin, end) + " begin after they end");
    if (end > data_size_) {
      fail_tensor("data_offsets " + range_text(begin, end) + " lie outside the data section of " +
                  std::to_string(data_size_) + " bytes");
    }
    uint64_t expected = 0;
    if (!storage_bytes(count, bits, expected)) {
      fail_tensor("shape " + shape_text(t.shape) + " of " + t.dtype + " needs more than 2^64-1 bytes");
    }
    if (end - begin != expected) {
      fail_tensor("data_offsets " + range_text(begin, end) + " hold " + std::to_string(end - begin) +
                  " bytes, but shape " + shape_text(t.shape) + " of " + t.dtype + " needs " +
                  std::to_string(expected));
    }
  }

  static std::string shape_text(const std::vector<uint64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
      if (i) s += ", ";
      if (i == 8 && shape.size() > 9) {
        s += "... " + std::to_string(shape.size()) + " dims";
        break;
      }
      s += std::to_string(shape[i]);
    }
    return s + "]";
  }

  std::string_view in_;
  size_t pos_ = 0;
  const std::string& label_;
  const uint64_t data_size_;
  SafetensorsHeader& out_;
  std::string entry_name_;
  bool seen_metadata_ = false;
};

// Tensor names must be unique and the tensors must tile the data section exactly, as the safetensors
// format requires: no overlaps (one byte claimed twice), no holes, nothing after the last tensor.
void check_layout(const SafetensorsHeader& h, uint64_t data_size, const std::string& label) {
  std::unordered_set<std::string_view> names;
  names.reserve(h.tensors.size());
  for (const auto& t : h.tensors) {
    if (!names.insert(t.name).second) {
      throw SafetensorsError(label + ": tensor " + printable(t.name) + " appears more than once in the header");
    }
  }
  std::vector<size_t> order(h.tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
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
  HeaderParser(header_json, file_label, data_size, header).parse();
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
  auto text = std::make_unique_for_overwrite<char[]>(n);
  pread_exact(fd.get(), text.get(), n, 8, label);
  SafetensorsHeader header = parse_safetensors_header(std::string_view(text.get(), n), file_size - 8 - n, label);
  header.file_size = file_size;
  return header;
}

}  // namespace modelagent
