#pragma once
// Splitting an absolute URL as written, for signers that must sign exactly the host and request target
// the HTTP client will send (libcurl's parser normalises, so they cannot use it).

#include <optional>
#include <string>
#include <string_view>

namespace modelagent {

struct UrlParts {
  std::string scheme;     // as written
  std::string authority;  // host[:port] as written, without userinfo
  std::string target;     // path and query as written, without the fragment; "" when the URL has neither
};

// nullopt unless `url` is "scheme://authority..." with a non-empty scheme and host.
inline std::optional<UrlParts> split_absolute_url(std::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) return std::nullopt;
  size_t start = scheme_end + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string_view authority = url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (authority.empty()) return std::nullopt;
  std::string_view target = end == std::string_view::npos ? std::string_view() : url.substr(end);
  if (size_t hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  return UrlParts{std::string(url.substr(0, scheme_end)), std::string(authority), std::string(target)};
}

}  // namespace modelagent
