// AWS Signature Version 4 for S3 requests, and the encoding/hashing helpers it needs.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <stdexcept>

#include "modelagent/ascii_text.hpp"
#include "modelagent/digest.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/s3.hpp"
#include "modelagent/url_parts.hpp"

namespace modelagent::s3 {

namespace {

constexpr const char* kAlgorithm = "AWS4-HMAC-SHA256";
constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Header values are trimmed and inner runs of spaces collapse to one.
std::string canonical_value(const std::string& value) {
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

struct SigningUrl {
  std::string scheme;
  std::string host;  // as it goes into the Host header: default ports dropped
  std::string path;
  std::string query;
};

SigningUrl split_url(const std::string& url) {
  auto parts = split_absolute_url(url);
  if (!parts) throw DownloadError("SigV4: not an absolute URL: " + url);
  SigningUrl p;
  p.scheme = ascii_lower(parts->scheme);
  std::string authority = ascii_lower(parts->authority);
  if ((p.scheme == "https" && authority.ends_with(":443")) || (p.scheme == "http" && authority.ends_with(":80"))) {
    authority = authority.substr(0, authority.rfind(':'));
  }
  p.host = authority;
  size_t q = parts->target.find('?');
  p.path = parts->target.substr(0, q);
  if (p.path.empty()) p.path = "/";
  if (q != std::string::npos) p.query = parts->target.substr(q + 1);
  return p;
}

// Each name and value decoded then encoded the AWS way, sorted by name then value.
std::string canonical_query(const std::string& query, const std::string& url) {
  if (query.empty()) return "";
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    std::string item = query.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!item.empty()) {
      size_t eq = item.find('=');
      try {
        std::string name = uri_decode(item.substr(0, eq), false);
        std::string value = eq == std::string::npos ? "" : uri_decode(item.substr(eq + 1), false);
        pairs.emplace_back(uri_encode(name, false), uri_encode(value, false));
      } catch (const std::invalid_argument& e) {
        throw DownloadError("SigV4: bad query string in " + url + ": " + e.what());
      }
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [name, value] : pairs) {
    if (!out.empty()) out += '&';
    out += name + "=" + value;
  }
  return out;
}

void set_header(HeaderList& headers, const std::string& name, const std::string& value) {
  std::erase_if(headers, [&](const auto& kv) { return ascii_lower(kv.first) == name; });
  headers.emplace_back(name, value);
}

bool is_signed_header(const std::string& lname) {
  return lname == "host" || lname.starts_with("x-amz-") || lname == "content-md5" || lname == "content-type" ||
         lname == "range";
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string uri_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
      int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        throw std::invalid_argument("invalid percent-escape at offset " + std::to_string(i) + " of '" +
                                    std::string(text) + "'");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &n, EVP_sha256(), nullptr) != 1) {
    throw Error("OpenSSL SHA-256 failed");
  }
  return to_hex(digest, n);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), out, &n)) {
    throw Error("OpenSSL HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(out), n);
}

std::string amz_date(std::chrono::system_clock::time_point when) {
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* end = nullptr;
  if (s.size() == 16 && s[8] == 'T') {
    end = strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm);
  } else {
    end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (end && *end == '.') {
      ++end;
      while (*end >= '0' && *end <= '9') ++end;
    }
    if (end && *end == 'Z') ++end;
    else if (end && (s.ends_with("+00:00"))) end = s.c_str() + s.size();
    else end = nullptr;
  }
  if (!end || *end != '\0') return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

SigV4Signer::SigV4Signer(std::shared_ptr<const CredentialsProvider> credentials, std::string region,
                         std::string service, bool unsigned_payload)
    : credentials_(std::move(credentials)),
      region_(std::move(region)),
      service_(std::move(service)),
      unsigned_payload_(unsigned_payload) {
  if (!credentials_) throw CredentialsError("SigV4 signer created without a credentials provider");
}

void SigV4Signer::sign(const std::string& method, const std::string& url, const std::string& body,
                       HeaderList& headers) const {
  sign_at(method, url, body, headers, std::chrono::system_clock::now(), credentials_->get());
}

bool SigV4Signer::renew_after_rejection(const HeaderList& rejected) const {
  // "AWS4-HMAC-SHA256 Credential=<access key id>/<date>/<region>/s3/aws4_request, ..."
  std::string authorization = authorization_of(rejected);
  std::string access_key_id;
  if (size_t at = authorization.find("Credential="); at != std::string::npos) {
    size_t begin = at + 11;
    access_key_id = authorization.substr(begin, authorization.find('/', begin) - begin);
  }
  return credentials_->renew(access_key_id);
}

std::string SigV4Signer::describe() const {
  return "AWS SigV4 (" + service_ + ", region " + region_ + ", credentials from " + credentials_->describe() + ")";
}

SigningResult SigV4Signer::sign_at(const std::string& method, const std::string& url, const std::string& body,
                                   HeaderList& headers, std::chrono::system_clock::time_point when,
                                   const Credentials& credentials) const {
  SigningUrl parts = split_url(url);
  std::string date = amz_date(when);
  std::string day = date.substr(0, 8);
  std::string upper_method = method;
  std::transform(upper_method.begin(), upper_method.end(), upper_method.begin(),
                 [](unsigned char c) { return std::toupper(c); });

  std::string payload = (unsigned_payload_ && body.empty() && (upper_method == "GET" || upper_method == "HEAD"))
                            ? std::string(kUnsignedPayload)
                            : sha256_hex(body);
  std::erase_if(headers, [](const auto& kv) {
    std::string n = ascii_lower(kv.first);
    return n == "authorization" || n == "x-amz-date" || n == "x-amz-content-sha256" || n == "x-amz-security-token";
  });
  headers.emplace_back("x-amz-date", date);
  headers.emplace_back("x-amz-content-sha256", payload);
  if (!credentials.session_token.empty()) headers.emplace_back("x-amz-security-token", credentials.session_token);

  // name -> values in order (repeated headers join with ',').
  std::map<std::string, std::string> signed_headers;
  bool has_host = false;
  for (const auto& [name, value] : headers) {
    std::string n = ascii_lower(name);
    if (!is_signed_header(n)) continue;
    if (n == "host") has_host = true;
    auto [it, inserted] = signed_headers.emplace(n, canonical_value(value));
    if (!inserted) it->second += "," + canonical_value(value);
  }
  if (!has_host) signed_headers.emplace("host", parts.host);

  std::string canonical_headers;
  std::string signed_names;
  for (const auto& [name, value] : signed_headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_names.empty()) signed_names += ';';
    signed_names += name;
  }

  SigningResult r;
  r.canonical_request = upper_method + "\n" + parts.path + "\n" + canonical_query(parts.query, url) + "\n" +
                        canonical_headers + "\n" + signed_names + "\n" + payload;
  std::string scope = day + "/" + region_ + "/" + service_ + "/aws4_request";
  r.string_to_sign = std::string(kAlgorithm) + "\n" + date + "\n" + scope + "\n" + sha256_hex(r.canonical_request);
  std::string key = hmac_sha256("AWS4" + credentials.secret_access_key, day);
  key = hmac_sha256(key, region_);
  key = hmac_sha256(key, service_);
  key = hmac_sha256(key, "aws4_request");
  std::string raw = hmac_sha256(key, r.string_to_sign);
  r.signature = to_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  r.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" + scope +
                    ", SignedHeaders=" + signed_names + ", Signature=" + r.signature;
  set_header(headers, "authorization", r.authorization);
  return r;
}

}  // namespace modelagent::s3
