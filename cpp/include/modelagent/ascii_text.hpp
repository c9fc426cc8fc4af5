#pragma once
// Small ASCII string helpers shared by the parsers and signers: case folding, whitespace trimming, and
// showing untrusted names in error messages.

#include <cstdio>
#include <string>
#include <string_view>

namespace modelagent {

// ASCII lower case (bytes >= 0x80 unchanged): header names, hostnames, parameter values.
inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Without leading and trailing spaces, tabs, CRs and LFs.
inline std::string trim_space(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(kSpace);
  return std::string(s.substr(b, e - b + 1));
}

// `s` with control bytes (NUL included) written as \xNN, cut to `max_bytes` with "..." after; for names
// that came from a remote listing or a plan and go into a message.
inline std::string printable(std::string_view s, size_t max_bytes = std::string_view::npos) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > max_bytes) out = out.substr(0, max_bytes) + "...";
  return out;
}

}  // namespace modelagent
