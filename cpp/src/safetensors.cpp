// Safetensors header reading and validation.
//
// The header JSON goes through nlohmann::json's SAX parser into a handler that keeps only what a
// TensorInfo needs, so a hostile 100 MiB header never becomes a JSON DOM, and every rejection can name
// the tensor at fault.

#include "modelagent/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <memory_resource>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <unordered_set>

#include "modelagent/errors.hpp"

namespace modelagent {

namespace {

constexpr size_t kMaxQuoted = 200;

// Text from an untrusted header, quoted, with control characters, quotes and backslashes escaped and
// the length capped for an error message. Non-ASCII bytes are kept when the text is known to be valid
// UTF-8 (the cut then never splits a character), else escaped too.
std::string printable(std::string_view s, bool valid_utf8 = true) {
  size_t cut = std::min(s.size(), kMaxQuoted);
  while (valid_utf8 && cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  std::string out = "'";
  out.reserve(cut + 8);
  for (size_t i = 0; i < cut; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\' || (c >= 0x80 && !valid_utf8)) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (cut < s.size()) out += "...";
  out += "'";
  return out;
}

std::string range_text(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

std::string shape_text(const std::vector<uint64_t>& shape) {
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

// Bytes occupied by `elements` values of `bits` each, rounded up to whole bytes; false on overflow.
bool storage_bytes(uint64_t elements, unsigned bits, uint64_t& bytes) {
  unsigned __int128 total_bits = static_cast<unsigned __int128>(elements) * bits;
  unsigned __int128 b = (total_bits + 7) / 8;
  if (b > UINT64_MAX) return false;
  bytes = static_cast<uint64_t>(b);
  return true;
}

// Bits per element, or 0 for an unknown dtype. The common dtypes come first.
unsigned lookup_dtype_bits(std::string_view dtype) {
  struct Entry {
    std::string_view name;
    unsigned bits;
  };
  static constexpr Entry kTable[] = {
      {"BF16", 16},    {"F32", 32},     {"F16", 16},         {"F8_E4M3", 8},      {"I32", 32},      {"U8", 8},
      {"I64", 64},     {"F8_E8M0", 8},  {"F8_E5M2", 8},      {"F4", 4},           {"F64", 64},      {"I8", 8},
      {"I16", 16},     {"U16", 16},     {"U32", 32},         {"U64", 64},         {"BOOL", 8},      {"F6_E2M3", 6},
      {"F6_E3M2", 6},  {"C64", 64},     {"F8_E4M3FNUZ", 8},  {"F8_E5M2FNUZ", 8},
  };
  for (const auto& e : kTable) {
    if (e.name == dtype) return e.bits;
  }
  return 0;
}

using json = nlohmann::json;

// Receives nlohmann's SAX events for a header and builds the tensor list in place. sax_parse is a
// template over the handler type, so these calls are direct (no json_sax virtual dispatch).
//
// A schema error (wrong type, unknown dtype, bad offsets...) is recorded and the rest of the input is
// still run through the parser, ignored: a JSON syntax error anywhere takes precedence, since the text
// must be fixed before its meaning can be judged.
class HeaderHandler {
 public:
  HeaderHandler(std::string_view text, size_t json_end, const std::string& label, uint64_t data_size,
                SafetensorsHeader& out)
      : text_(text), json_end_(json_end), label_(label), data_size_(data_size), out_(out) {}

  // The recorded schema error, or "".
  const std::string& error() const { return error_; }
  bool finished() const { return top_done_; }

  bool null() {
    if (skip_ == 0 && level_ == kHeader && in_metadata_) return true;  // "__metadata__": null
    return value("null");
  }
  bool boolean(bool) { return value("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    // The JSON lexer hands out negative integers only here; non-negative ones go to number_unsigned.
    if (skip_ == 0 && level_ == kArray) return fail_array("has the negative value " + std::to_string(v));
    return value("a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (skip_ != 0 || level_ != kArray) return value("a number");
    if (field_ == kShape) {
      shape_.push_back(v);
    } else {
      if (offsets_seen_ == 0) tensor().data_begin = v;
      if (offsets_seen_ == 1) tensor().data_end = v;
      ++offsets_seen_;
    }
    return true;
  }
  bool number_float(json::number_float_t, const json::string_t& text) {
    // Fractions, exponents and integers beyond the 64-bit range all arrive here.
    if (skip_ == 0 && level_ == kArray) {
      return fail_array("has the value " + printable(text) + ", which is not an integer in 0..2^64-1");
    }
    return value("a number");
  }
  bool string(json::string_t& s) {
    if (skip_ == 0 && level_ == kEntry) {
      if (in_metadata_) {
        out_.metadata.insert_or_assign(metadata_key_, s);
        return true;
      }
      if (field_ == kDtype) {
        tensor().dtype.assign(s);
        return true;
      }
    }
    return value("a string");
  }
  bool binary(json::binary_t&) { return value("binary data"); }  // not produced by the JSON text parser

  bool start_object(std::size_t) { return open(true); }
  bool start_array(std::size_t) { return open(false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& k) {
    if (skip_ != 0) return true;
    const std::string_view name(k);
    if (level_ == kHeader) {
      in_metadata_ = name == "__metadata__";
      if (in_metadata_) {
        if (seen_metadata_) return fail("\"__metadata__\" appears more than once in the header");
        seen_metadata_ = true;
      } else {
        entry_name_.assign(name);  // a reused buffer: the lexer's string keeps its capacity too
      }
      return true;
    }
    if (in_metadata_) {
      metadata_key_.assign(name);
      return true;
    }
    field_ = name == "dtype" ? kDtype : name == "shape" ? kShape : name == "data_offsets" ? kOffsets : kOther;
    if (field_ != kOther) {
      if (seen_fields_ & field_) return fail_tensor("field \"" + std::string(name) + "\" appears twice");
      seen_fields_ |= field_;
    }
    return true;
  }

  [[noreturn]] bool parse_error(std::size_t position, const std::string& last_token,
                                const nlohmann::detail::exception& ex) {
    // position counts the characters read, the offending one included; at the end of input it is one
    // past the last byte, which reports the end-of-input offset.
    const size_t offset = position > 0 ? position - 1 : 0;
    std::string reason;
    if (json_end_ < text_.size() && offset == json_end_) {
      reason = "unexpected NUL byte";  // the parser was given the text up to the first NUL only
    } else {
      reason = nlohmann_reason(ex.what(), last_token);
      if (top_done_) reason = "unexpected content after the header object (" + reason + ")";
    }
    throw SafetensorsError(label_ + ": header is not valid JSON at byte offset " + std::to_string(offset) + ": " +
                           reason);
  }

 private:
  enum Level : unsigned char { kTop, kHeader, kEntry, kArray };  // kEntry: a tensor or "__metadata__"
  enum Field : unsigned char { kOther = 0, kDtype = 1, kShape = 2, kOffsets = 4 };
  // skip_ after a schema error: far above any nesting depth, so closing containers never reaches 0.
  static constexpr size_t kFailed = size_t{1} << 62;

  // nlohmann's "[json.exception.parse_error.101] parse error at line L, column C: <reason>", with
  // the "; last read: '<token>'" part quoted safely (the token is raw input, possibly huge or binary).
  static std::string nlohmann_reason(const std::string& what, const std::string& last_token) {
    std::string reason = what;
    if (auto colon = reason.find(": "); reason.rfind("[json.exception", 0) == 0 && colon != std::string::npos) {
      reason.erase(0, colon + 2);
    }
    static constexpr std::string_view kLastRead = "; last read: '";
    if (auto at = reason.find(kLastRead); at != std::string::npos) {
      const size_t token = at + kLastRead.size();
      if (reason.compare(token, last_token.size(), last_token) == 0 && token + last_token.size() < reason.size()) {
        reason = reason.substr(0, at) + "; last read: " + printable(last_token, false) +
                 reason.substr(token + last_token.size() + 1);
      }
    }
    return reason;
  }

  TensorInfo& tensor() { return out_.tensors.back(); }

  bool fail(const std::string& message) {
    error_ = label_ + ": " + message;
    skip_ = kFailed;
    return true;
  }
  bool fail_tensor(const std::string& message) { return fail("tensor " + printable(entry_name_) + ": " + message); }
  bool fail_array(const std::string& message) {
    return fail_tensor(std::string(field_ == kShape ? "\"shape\" " : "\"data_offsets\" ") + message);
  }

  // A value (or the start of a container) that no more specific event above consumed.
  bool value(const char* kind) {
    if (skip_ != 0) return true;
    switch (level_) {
      case kTop:
        return fail(std::string("header must be a JSON object, found ") + kind);
      case kHeader:
        if (in_metadata_) return fail(std::string("\"__metadata__\" must be an object of strings, found ") + kind);
        return fail_tensor(std::string("entry must be an object, found ") + kind);
      case kEntry:
        if (in_metadata_) {
          return fail("\"__metadata__\" value of " + printable(metadata_key_) + " must be a string, found " + kind);
        }
        switch (field_) {
          case kDtype:
            return fail_tensor(std::string("\"dtype\" must be a string, found ") + kind);
          case kShape:
          case kOffsets:
            return fail_array(std::string("must be an array of integers, found ") + kind);
          default:
            return true;  // an unknown field's scalar value
        }
      default:
        return fail_array(std::string("must contain only non-negative integers, found ") + kind);
    }
  }

  bool open(bool object) {
    if (skip_ != 0) {
      ++skip_;
      return true;
    }
    const char* kind = object ? "an object" : "an array";
    switch (level_) {
      case kTop:
        if (!object) return value(kind);
        level_ = kHeader;
        return true;
      case kHeader:
        if (!object) return value(kind);
        level_ = kEntry;
        field_ = kOther;
        if (!in_metadata_) begin_tensor();
        return true;
      case kEntry:
        if (in_metadata_ || field_ == kDtype || (object && field_ != kOther)) return value(kind);
        if (field_ == kOther) {
          skip_ = 1;  // an unknown field: its value is only syntax-checked
          return true;
        }
        level_ = kArray;
        return true;
      default:
        return value(kind);
    }
  }

  bool close() {
    if (skip_ != 0) {
      --skip_;
      return true;
    }
    switch (level_) {
      case kArray:
        level_ = kEntry;
        if (field_ == kShape) {
          tensor().shape.assign(shape_.begin(), shape_.end());
        } else if (offsets_seen_ != 2) {
          return fail_array("must have exactly 2 entries [begin, end], found " + std::to_string(offsets_seen_));
        }
        return true;
      case kEntry:
        level_ = kHeader;
        return in_metadata_ ? true : finish_tensor();
      default:
        level_ = kTop;
        top_done_ = true;
        return true;
    }
  }

  void begin_tensor() {
    if (out_.tensors.empty()) {
      // Real headers spend about 100 bytes per tensor; the cap bounds what a hostile header can claim.
      out_.tensors.reserve(std::min<size_t>(text_.size() / 128, 65536));
    }
    out_.tensors.emplace_back().name.assign(entry_name_);
    seen_fields_ = 0;
    offsets_seen_ = 0;
    shape_.clear();
  }

  bool finish_tensor() {
    TensorInfo& t = tensor();
    for (auto [field, name] : {std::pair{kDtype, "dtype"}, std::pair{kShape, "shape"},
                               std::pair{kOffsets, "data_offsets"}}) {
      if (!(seen_fields_ & field)) return fail_tensor(std::string("field \"") + name + "\" is missing");
    }
    const unsigned bits = lookup_dtype_bits(t.dtype);
    if (bits == 0) return fail_tensor("unknown dtype " + printable(t.dtype));
    uint64_t count = 1;
    for (uint64_t dim : t.shape) {
      if (__builtin_mul_overflow(count, dim, &count)) {
        return fail_tensor("shape " + shape_text(t.shape) + " has more than 2^64-1 elements");
      }
    }
    t.element_count = count;
    const uint64_t begin = t.data_begin, end = t.data_end;
    if (begin > end) return fail_tensor("data_offsets " + range_text(begin, end) + " begin after they end");
    if (end > data_size_) {
      return fail_tensor("data_offsets " + range_text(begin, end) + " lie outside the data section of " +
                         std::to_string(data_size_) + " bytes");
    }
    uint64_t expected = 0;
    if (!storage_bytes(count, bits, expected)) {
      return fail_tensor("shape " + shape_text(t.shape) + " of " + t.dtype + " needs more than 2^64-1 bytes");
    }
    if (end - begin != expected) {
      return fail_tensor("data_offsets " + range_text(begin, end) + " hold " + std::to_string(end - begin) +
                         " bytes, but shape " + shape_text(t.shape) + " of " + t.dtype + " needs " +
                         std::to_string(expected));
    }
    return true;
  }

  const std::string_view text_;
  const size_t json_end_;  // where the parser's input ends: the first NUL byte, else the text's end
  const std::string& label_;
  const uint64_t data_size_;
  SafetensorsHeader& out_;
  Level level_ = kTop;
  Field field_ = kOther;  // the field whose value comes next (in an entry or its array)
  size_t skip_ = 0;       // nesting depth inside an ignored value, or kFailed
  bool in_metadata_ = false;
  bool seen_metadata_ = false;
  bool top_done_ = false;  // the header object has been closed
  unsigned seen_fields_ = 0;
  size_t offsets_seen_ = 0;
  std::string entry_name_;
  std::string metadata_key_;
  std::vector<uint64_t> shape_;
  std::string error_;
};

// Tensor names must be unique and the tensors must tile the data section exactly, as the safetensors
// format requires: no overlaps (one byte claimed twice), no holes, nothing after the last tensor.
void check_layout(const SafetensorsHeader& h, uint64_t data_size, const std::string& label) {
  // The set's nodes and buckets come from one arena: a node per tensor would otherwise be a malloc each.
  std::pmr::monotonic_buffer_resource arena;
  std::pmr::unordered_set<std::string_view> names(&arena);
  names.reserve(h.tensors.size());
  for (const auto& t : h.tensors) {
    if (!names.insert(t.name).second) {
      throw SafetensorsError(label + ": tensor " + printable(t.name) + " appears more than once in the header");
    }
  }
  // Writers list tensors in data order, so the common case needs no sort: each tensor starts where
  // the previous one ended and the last ends with the data section. Anything else is checked (and
  // explained) in sorted order below.
  uint64_t covered = 0;
  bool tiled = true;
  for (const auto& t : h.tensors) {
    if (t.data_begin != covered) {
      tiled = false;
      break;
    }
    covered = t.data_end;
  }
  if (tiled && covered == data_size) return;
  std::vector<size_t> order(h.tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto &x = h.tensors[a], &y = h.tensors[b];
    return x.data_begin != y.data_begin ? x.data_begin < y.data_begin : x.data_end < y.data_end;
  });
  covered = 0;
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
  if (unsigned bits = lookup_dtype_bits(dtype); bits != 0) return bits;
  throw SafetensorsError("unknown safetensors dtype " + printable(dtype, false));
}

SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_size,
                                           const std::string& file_label) {
  SafetensorsHeader header;
  header.file = file_label;
  header.header_length = header_json.size();
  auto syntax_error = [&](size_t offset, const std::string& what) {
    return SafetensorsError(file_label + ": header is not valid JSON at byte offset " + std::to_string(offset) +
                            ": " + what);
  };
  // nlohmann's lexer skips a UTF-8 byte order mark and takes a NUL byte for the end of the input; JSON
  // (RFC 8259) allows neither in a header, so the parser sees only the text before the first NUL.
  if (header_json.substr(0, 3) == "\xEF\xBB\xBF") {
    throw syntax_error(0, "unexpected character (a UTF-8 byte order mark)");
  }
  const void* nul = std::memchr(header_json.data(), '\0', header_json.size());
  const size_t json_end = nul ? static_cast<size_t>(static_cast<const char*>(nul) - header_json.data())
                              : header_json.size();
  HeaderHandler handler(header_json, json_end, file_label, data_size, header);
  json::sax_parse(header_json.data(), header_json.data() + json_end, &handler);
  if (json_end < header_json.size()) {
    throw syntax_error(json_end, handler.finished() ? "unexpected NUL byte after the header object"
                                                    : "unexpected NUL byte");
  }
  if (!handler.error().empty()) throw SafetensorsError(handler.error());
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
