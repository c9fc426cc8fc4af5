// ConfigMap entry JSON: tolerant parsing and Go-identical serialisation.

#include "modelagent/model_entry.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <string>

#include "modelagent/errors.hpp"

namespace modelagent {

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// ---- Go encoding/json writer ----

// Length of the valid UTF-8 sequence starting at s[i], or 0 if none starts there (Go's accept ranges:
// no overlong forms, no surrogates, nothing past U+10FFFF).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  return n;
}

void write_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    // U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR are E2 80 A8 / E2 80 A9.
    if (n == 3 && c == 0xe2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) & 0xfe) == 0xa8) {
      out += static_cast<unsigned char>(s[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += '"';
}

template <class J>
void write_value(std::string& out, const J& v) {
  switch (v.type()) {
    case nlohmann::detail::value_t::null: out += "null"; return;
    case nlohmann::detail::value_t::boolean: out += v.template get<bool>() ? "true" : "false"; return;
    case nlohmann::detail::value_t::number_integer: out += std::to_string(v.template get<int64_t>()); return;
    case nlohmann::detail::value_t::number_unsigned: out += std::to_string(v.template get<uint64_t>()); return;
    case nlohmann::detail::value_t::number_float: out += go_format_float(v.template get<double>()); return;
    case nlohmann::detail::value_t::string: write_string(out, v.template get_ref<const std::string&>()); return;
    case nlohmann::detail::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v) {
        if (!first) out += ',';
        first = false;
        write_value(out, item);
      }
      out += ']';
      return;
    }
    case nlohmann::detail::value_t::object: {
      out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ',';
        first = false;
        write_string(out, it.key());
        out += ':';
        write_value(out, it.value());
      }
      out += '}';
      return;
    }
    default: throw ModelEntryError("JSON value of an unsupported type (binary or discarded) cannot be written");
  }
}

// ---- parsing helpers ----

std::string context(std::string_view key) {
  return key.empty() ? std::string("ConfigMap entry") : "ConfigMap entry '" + std::string(key) + "'";
}

[[noreturn]] void fail_field(std::string_view key, std::string_view field, const std::string& what) {
  throw ModelEntryError(context(key) + ": field '" + std::string(field) + "' " + what);
}

std::string optional_string(const json& v, std::string_view key, std::string_view field) {
  if (v.is_null()) return {};
  if (!v.is_string()) fail_field(key, field, std::string("must be a string, got ") + v.type_name());
  return v.get<std::string>();
}

// An integer JSON number within [lo, hi]; Go refuses fractions and exponents for integer fields, so do we.
template <class T>
T integer_in_range(const json& v, std::string_view key, std::string_view field) {
  constexpr auto lo = std::numeric_limits<T>::min();
  constexpr auto hi = std::numeric_limits<T>::max();
  std::string range = "between " + std::to_string(lo) + " and " + std::to_string(hi);
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(hi)) return static_cast<T>(u);
    fail_field(key, field, "must be an integer " + range + ", got " + std::to_string(u));
  }
  if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (i >= static_cast<int64_t>(lo) && (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(hi)))
      return static_cast<T>(i);
    fail_field(key, field, "must be an integer " + range + ", got " + std::to_string(i));
  }
  fail_field(key, field, std::string("must be an integer ") + range + ", got " +
                             (v.is_number_float() ? "the non-integer number " + v.dump() : v.type_name()));
}

std::optional<NameVersion> parse_name_version(const json& v, std::string_view key, std::string_view field) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_object()) fail_field(key, field, std::string("must be an object, got ") + v.type_name());
  NameVersion out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    std::string sub = std::string(field) + "." + it.key();
    if (!it.value().is_string()) fail_field(key, sub, std::string("must be a string, got ") + it.value().type_name());
    if (it.key() == "name") {
      out.name = it.value().get<std::string>();
    } else if (it.key() == "version") {
      out.version = it.value().get<std::string>();
    } else {
      out.extra[it.key()] = it.value().get<std::string>();
    }
  }
  if (v.empty()) return std::nullopt;  // Go's omitempty drops an empty map, so it means "absent"
  return out;
}

ModelConfig parse_config(const json& v, std::string_view key) {
  if (!v.is_object()) fail_field(key, "config", std::string("must be an object, got ") + v.type_name());
  ModelConfig c;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& k = it.key();
    const json& val = it.value();
    std::string field = "config." + k;
    if (k == "modelType") {
      c.model_type = optional_string(val, key, field);
    } else if (k == "modelArchitecture") {
      c.model_architecture = optional_string(val, key, field);
    } else if (k == "modelFramework") {
      c.model_framework = parse_name_version(val, key, field);
    } else if (k == "modelFormat") {
      c.model_format = parse_name_version(val, key, field);
    } else if (k == "modelParameterSize") {
      c.model_parameter_size = optional_string(val, key, field);
    } else if (k == "maxTokens") {
      c.max_tokens = val.is_null() ? 0 : integer_in_range<int32_t>(val, key, field);
    } else if (k == "modelCapabilities") {
      if (val.is_null()) continue;
      if (!val.is_array()) fail_field(key, field, std::string("must be an array of strings, got ") + val.type_name());
      for (size_t i = 0; i < val.size(); ++i) {
        if (!val[i].is_string())
          fail_field(key, field + "[" + std::to_string(i) + "]",
                     std::string("must be a string, got ") + val[i].type_name());
        c.model_capabilities.push_back(val[i].get<std::string>());
      }
    } else if (k == "decodedModelConfiguration") {
      if (val.is_null()) continue;
      if (!val.is_object()) fail_field(key, field, std::string("must be an object, got ") + val.type_name());
      c.decoded_model_configuration = val;
    } else if (k == "quantization") {
      c.quantization = optional_string(val, key, field);
    } else {
      c.extra[k] = val;
    }
  }
  return c;
}

ModelProgress parse_progress(const json& v, std::string_view key) {
  if (!v.is_object()) fail_field(key, "progress", std::string("must be an object, got ") + v.type_name());
  ModelProgress p;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& k = it.key();
    const json& val = it.value();
    if (val.is_null()) continue;
    std::string field = "progress." + k;
    if (k == "phase") {
      p.phase = optional_string(val, key, field);
    } else if (k == "totalBytes") {
      p.total_bytes = integer_in_range<uint64_t>(val, key, field);
    } else if (k == "completedBytes") {
      p.completed_bytes = integer_in_range<uint64_t>(val, key, field);
    } else if (k == "totalFiles") {
      p.total_files = integer_in_range<uint32_t>(val, key, field);
    } else if (k == "completedFiles") {
      p.completed_files = integer_in_range<uint32_t>(val, key, field);
    } else if (k == "speedBytesPerSec") {
      if (!val.is_number()) fail_field(key, field, std::string("must be a number, got ") + val.type_name());
      p.speed_bytes_per_sec = val.get<double>();
    } else if (k == "lastUpdated") {
      p.last_updated = optional_string(val, key, field);
    }
  }
  return p;
}

ordered_json name_version_value(const NameVersion& nv) {
  json sorted(nv.extra);  // a Go map: every key in byte order
  sorted["name"] = nv.name;
  if (nv.version) sorted["version"] = *nv.version;
  return ordered_json(sorted);
}

void append_extra(ordered_json& out, const json& extra) {
  if (!extra.is_object()) return;
  for (auto it = extra.begin(); it != extra.end(); ++it)
    if (!out.contains(it.key())) out[it.key()] = ordered_json(it.value());
}

ordered_json config_value(const ModelConfig& c) {
  ordered_json out = ordered_json::object();
  if (!c.model_type.empty()) out["modelType"] = c.model_type;
  if (!c.model_architecture.empty()) out["modelArchitecture"] = c.model_architecture;
  if (c.model_framework) out["modelFramework"] = name_version_value(*c.model_framework);
  if (c.model_format) out["modelFormat"] = name_version_value(*c.model_format);
  if (!c.model_parameter_size.empty()) out["modelParameterSize"] = c.model_parameter_size;
  if (c.max_tokens != 0) out["maxTokens"] = c.max_tokens;
  if (!c.model_capabilities.empty()) out["modelCapabilities"] = c.model_capabilities;
  if (c.decoded_model_configuration.is_object() && !c.decoded_model_configuration.empty())
    out["decodedModelConfiguration"] = ordered_json(c.decoded_model_configuration);
  if (!c.quantization.empty()) out["quantization"] = c.quantization;
  append_extra(out, c.extra);
  return out;
}

}  // namespace

bool is_known_model_status(std::string_view status) {
  return status == model_status::kReady || status == model_status::kUpdating || status == model_status::kFailed ||
         status == model_status::kDeleted;
}

std::string go_format_float(double value) {
  if (!std::isfinite(value))
    throw ModelEntryError(std::string("JSON cannot represent the number ") +
                          (std::isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf"));
  if (value == 0) return std::signbit(value) ? "-0" : "0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // shortest round-trip digits: [-]d[.ddd]e(+|-)XX[X]
  double magnitude = std::fabs(value);
  if (magnitude < 1e-6 || magnitude >= 1e21) {
    // Go writes e-07 as e-7 (and never produces e+0X here).
    size_t n = sci.size();
    if (n >= 4 && sci[n - 4] == 'e' && sci[n - 3] == '-' && sci[n - 2] == '0') {
      sci[n - 2] = sci[n - 1];
      sci.pop_back();
    }
    return sci;
  }
  bool negative = sci.front() == '-';
  size_t e_at = sci.find('e');
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e_at; ++i)
    if (sci[i] != '.') digits += sci[i];
  int exponent = std::stoi(sci.substr(e_at + 1));
  int point = exponent + 1;  // digits before the decimal point
  int nd = static_cast<int>(digits.size());
  std::string out = negative ? "-" : "";
  if (point <= 0) {
    out += "0." + std::string(-point, '0') + digits;
  } else if (point >= nd) {
    out += digits + std::string(point - nd, '0');
  } else {
    out += digits.substr(0, point) + "." + digits.substr(point);
  }
  return out;
}

std::string go_json(const json& value) {
  std::string out;
  write_value(out, value);
  return out;
}

std::string go_json(const ordered_json& value) {
  std::string out;
  write_value(out, value);
  return out;
}

std::string format_rfc3339(std::chrono::system_clock::time_point when) {
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ordered_json model_entry_to_value(const ModelEntry& entry) {
  ordered_json out = ordered_json::object();
  out["name"] = entry.name;
  out["status"] = entry.status;
  if (entry.config) out["config"] = config_value(*entry.config);
  if (entry.progress) {
    const ModelProgress& p = *entry.progress;
    ordered_json progress = ordered_json::object();
    progress["phase"] = p.phase;
    progress["totalBytes"] = p.total_bytes;
    progress["completedBytes"] = p.completed_bytes;
    progress["totalFiles"] = p.total_files;
    progress["completedFiles"] = p.completed_files;
    progress["speedBytesPerSec"] = p.speed_bytes_per_sec;
    progress["lastUpdated"] = p.last_updated;
    out["progress"] = std::move(progress);
  }
  append_extra(out, entry.extra);
  return out;
}

std::string serialize_model_entry(const ModelEntry& entry) { return go_json(model_entry_to_value(entry)); }

ModelEntry model_entry_from_value(const json& value, std::string_view key) {
  if (!value.is_object())
    throw ModelEntryError(context(key) + ": expected a JSON object, got " + std::string(value.type_name()));
  ModelEntry entry;
  bool has_name = false, has_status = false;
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string& k = it.key();
    const json& val = it.value();
    if (k == "name" || k == "status") {
      if (val.is_null()) continue;
      if (!val.is_string()) fail_field(key, k, std::string("must be a string, got ") + val.type_name());
      (k == "name" ? entry.name : entry.status) = val.get<std::string>();
      (k == "name" ? has_name : has_status) = true;
    } else if (k == "config") {
      if (!val.is_null()) entry.config = parse_config(val, key);
    } else if (k == "progress") {
      if (!val.is_null()) entry.progress = parse_progress(val, key);
    } else {
      entry.extra[k] = val;
    }
  }
  if (!has_name) throw ModelEntryError(context(key) + ": missing field 'name'");
  if (!has_status) throw ModelEntryError(context(key) + ": missing field 'status'");
  return entry;
}

ModelEntry parse_model_entry(std::string_view json_text, std::string_view key) {
  json value;
  try {
    value = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep its position and reason.
    if (size_t close = what.find("] "); what.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
      what = what.substr(close + 2);
    throw ModelEntryError(context(key) + ": invalid JSON: " + what);
  }
  return model_entry_from_value(value, key);
}

}  // namespace modelagent
