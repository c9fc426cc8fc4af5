// Storage URI parsing: one function per scheme, shared validators for names and paths.

#include "modelagent/storage_uri.hpp"

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include "modelagent/errors.hpp"

namespace modelagent {

namespace {

constexpr std::string_view kSupportedSchemes = "oci, hf, pvc, local, vendor, s3, gs, az, github";

// The URI as it appears in messages: bytes that would garble a log line are shown as \xNN.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

[[noreturn]] void fail(std::string_view uri, const std::string& what) {
  throw InvalidStorageUri("invalid storage URI '" + printable(uri) + "': " + what);
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

bool all_of(std::string_view s, bool (*pred)(char)) {
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}

// Rejects whitespace, control bytes and malformed UTF-8 anywhere in the URI.
void check_bytes(std::string_view uri) {
  for (size_t i = 0; i < uri.size();) {
    auto c = static_cast<unsigned char>(uri[i]);
    if (c <= 0x20 || c == 0x7f) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "contains %s (byte 0x%02x at offset %zu)",
                    c == 0 ? "a NUL byte" : (c == ' ' || (c >= 0x09 && c <= 0x0d)) ? "whitespace" : "a control character",
                    c, i);
      fail(uri, buf);
    }
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len != 0 && i + len <= uri.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(uri[i + k]) & 0xc0) == 0x80;
    if (ok && len > 1) {
      // Overlong encodings, surrogates and code points past U+10FFFF.
      uint32_t cp = c & (0xff >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(uri[i + k]) & 0x3f);
      ok = !(len == 2 && cp < 0x80) && !(len == 3 && cp < 0x800) && !(len == 4 && cp < 0x10000) &&
           !(cp >= 0xd800 && cp <= 0xdfff) && cp <= 0x10ffff;
    }
    if (!ok) fail(uri, "is not valid UTF-8 (offset " + std::to_string(i) + ")");
    i += len;
  }
}

// Checks a '/'-separated relative path: no empty, "." or ".." segments, no leading '/'. One trailing '/'
// is accepted and dropped. Returns the normalised path ("" only when allow_empty).
std::string clean_path(std::string_view uri, std::string_view path, const char* what, bool allow_empty) {
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) {
    if (allow_empty) return {};
    fail(uri, std::string("missing ") + what);
  }
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty())
      fail(uri, std::string(what) + " '" + printable(path) + "' has an empty segment ('//' or a leading '/')");
    if (seg == "." || seg == "..")
      fail(uri, std::string(what) + " '" + printable(path) + "' has a '" + std::string(seg) + "' segment");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return std::string(path);
}

// RFC 1123 label as Kubernetes checks it (namespaces): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
bool is_dns_label(std::string_view s) {
  return !s.empty() && s.size() <= 63 && is_lower_alnum(s.front()) && is_lower_alnum(s.back()) &&
         all_of(s, [](char c) { return is_lower_alnum(c) || c == '-'; });
}

// RFC 1123 subdomain as Kubernetes checks it (object names such as PVCs): dot-separated labels, at most 253.
bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || !is_lower_alnum(label.front()) || !is_lower_alnum(label.back()) ||
        !all_of(label, [](char c) { return is_lower_alnum(c) || c == '-'; }))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_name_char(char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; }

// Git ref rules that matter for a revision or tag in a URI (git check-ref-format, abridged).
void check_ref(std::string_view uri, std::string_view ref, const char* what) {
  auto bad = [&](const std::string& why) { fail(uri, std::string(what) + " '" + printable(ref) + "' " + why); };
  if (ref.front() == '/' || ref.back() == '/') bad("starts or ends with '/'");
  if (ref.find("//") != std::string_view::npos) bad("contains '//'");
  if (ref.find("..") != std::string_view::npos) bad("contains '..'");
  if (ref.find("@{") != std::string_view::npos) bad("contains '@{'");
  if (ref.back() == '.') bad("ends with '.'");
  if (ref.size() >= 5 && ref.substr(ref.size() - 5) == ".lock") bad("ends with '.lock'");
  for (char c : ref)
    if (c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[' || c == '\\')
      bad(std::string("contains '") + c + "'");
}

std::pair<std::string_view, std::string_view> split_once(std::string_view s, char sep, bool* found) {
  size_t at = s.find(sep);
  *found = at != std::string_view::npos;
  if (!*found) return {s, {}};
  return {s.substr(0, at), s.substr(at + 1)};
}

void check_oci_namespace(std::string_view uri, std::string_view ns) {
  if (ns.empty()) fail(uri, "empty OCI namespace");
  if (!all_of(ns, is_name_char))
    fail(uri, "OCI namespace '" + printable(ns) + "' may only contain letters, digits, '-', '_' and '.'");
}

void check_oci_bucket(std::string_view uri, std::string_view bucket) {
  if (bucket.empty()) fail(uri, "missing bucket name");
  if (bucket.size() > 256 || !all_of(bucket, is_name_char) || bucket == "." || bucket == "..")
    fail(uri, "OCI bucket name '" + printable(bucket) +
                  "' must be 1-256 letters, digits, '-', '_' or '.' (and not '.' or '..')");
}

void check_region(std::string_view uri, std::string_view region) {
  if (region.empty()) fail(uri, "empty region after '@'");
  if (!all_of(region, [](char c) { return is_alnum(c) || c == '-'; }))
    fail(uri, "region '" + printable(region) + "' may only contain letters, digits and '-'");
}

OciStorageUri parse_oci(std::string_view uri, std::string_view rest) {
  constexpr const char* expected =
      " (expected oci://n/<namespace>/b/<bucket>/o/<prefix>, oci://<namespace>@<region>/<bucket>[/<prefix>] "
      "or oci://<bucket>[/<prefix>])";
  OciStorageUri out;
  if (rest.empty()) fail(uri, std::string("missing bucket name") + expected);
  if (rest.substr(0, 2) == "n/") {
    // Canonical form: n/<ns>/b/<bucket>/o[/<prefix>]; markers are exact path segments.
    std::vector<std::string_view> seg;
    size_t start = 0;
    for (int i = 0; i < 5; ++i) {
      size_t slash = rest.find('/', start);
      seg.push_back(rest.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
      if (slash == std::string_view::npos) {
        start = rest.size() + 1;
        break;
      }
      start = slash + 1;
    }
    if (seg.size() < 5)
      fail(uri, std::string("canonical OCI URI is too short, the '/o/' marker is missing") + expected);
    if (seg[2] != "b") fail(uri, "expected the 'b' marker after the namespace, found '" + printable(seg[2]) + "'" + expected);
    if (seg[4] != "o") fail(uri, "expected the 'o' marker after the bucket, found '" + printable(seg[4]) + "'" + expected);
    check_oci_namespace(uri, seg[1]);
    check_oci_bucket(uri, seg[3]);
    out.namespace_name = seg[1];
    out.bucket = seg[3];
    out.prefix = clean_path(uri, start <= rest.size() ? rest.substr(start) : std::string_view{}, "object prefix", true);
    return out;
  }
  bool has_slash = false;
  auto [head, prefix] = split_once(rest, '/', &has_slash);
  bool has_at = false;
  auto [ns, region] = split_once(head, '@', &has_at);
  if (has_at) {
    check_oci_namespace(uri, ns);
    check_region(uri, region);
    bool has_bucket = false;
    auto [bucket, tail] = split_once(prefix, '/', &has_bucket);
    if (!has_slash || bucket.empty()) fail(uri, std::string("missing bucket name after '<namespace>@<region>/'") + expected);
    check_oci_bucket(uri, bucket);
    out.namespace_name = ns;
    out.region = region;
    out.bucket = bucket;
    out.prefix = clean_path(uri, tail, "object prefix", true);
    return out;
  }
  check_oci_bucket(uri, head);
  out.bucket = head;
  out.prefix = clean_path(uri, prefix, "object prefix", true);
  return out;
}

// Repository ids as the Hub validates them: [org/]name, each part of letters, digits, '-', '_' and '.',
// starting and ending with a letter, digit or '_'; name at most 96; no "--" or ".."; not ending in ".git".
// max_len 0 = unbounded.
void check_repo_part(std::string_view uri, std::string_view part, const char* what, size_t max_len) {
  auto word = [](char c) { return is_alnum(c) || c == '_'; };
  if (part.empty()) fail(uri, std::string("empty ") + what + " in model ID (expected hf://<org>/<name>[@<revision>])");
  if ((max_len != 0 && part.size() > max_len) || !all_of(part, is_name_char) || !word(part.front()) ||
      !word(part.back()))
    fail(uri, std::string(what) + " '" + printable(part) + "' must be " +
                  (max_len != 0 ? "at most " + std::to_string(max_len) + " " : std::string()) +
                  "letters, digits, '-', '_' or '.', starting and ending with a letter, digit or '_'");
}

HuggingFaceStorageUri parse_hf(std::string_view uri, std::string_view rest) {
  HuggingFaceStorageUri out;
  if (rest.empty()) fail(uri, "missing model ID (expected hf://<org>/<name>[@<revision>])");
  bool has_at = false;
  auto [repo, revision] = split_once(rest, '@', &has_at);
  if (repo.empty()) fail(uri, "model ID cannot be empty (expected hf://<org>/<name>[@<revision>])");
  if (has_at && revision.empty()) fail(uri, "empty revision after '@'");
  bool has_slash = false;
  auto [org, name] = split_once(repo, '/', &has_slash);
  if (has_slash) {
    if (name.find('/') != std::string_view::npos)
      fail(uri, "model ID '" + printable(repo) + "' has more than one '/' (expected <org>/<name>)");
    check_repo_part(uri, org, "organisation", 0);
    check_repo_part(uri, name, "repository name", 96);
  } else {
    check_repo_part(uri, repo, "repository name", 96);
  }
  if (repo.find("--") != std::string_view::npos || repo.find("..") != std::string_view::npos)
    fail(uri, "model ID '" + printable(repo) + "' contains '--' or '..'");
  if (repo.size() >= 4 && repo.substr(repo.size() - 4) == ".git")
    fail(uri, "model ID '" + printable(repo) + "' ends with '.git'");
  if (has_at) check_ref(uri, revision, "revision");
  out.repo_id = repo;
  out.revision = has_at ? std::string(revision) : "main";
  return out;
}

PvcStorageUri parse_pvc(std::string_view uri, std::string_view rest) {
  constexpr const char* expected = " (expected pvc://[<namespace>:]<name>/<subpath>)";
  PvcStorageUri out;
  bool has_slash = false;
  auto [head, sub] = split_once(rest, '/', &has_slash);
  bool has_colon = false;
  auto [ns, name] = split_once(head, ':', &has_colon);
  if (has_colon) {
    if (name.find(':') != std::string_view::npos) fail(uri, std::string("more than one ':' before the subpath") + expected);
    if (ns.empty()) fail(uri, std::string("empty namespace before ':'") + expected);
    if (!is_dns_label(ns))
      fail(uri, "namespace '" + printable(ns) +
                    "' is not a valid Kubernetes namespace (lowercase letters, digits and '-', at most 63, "
                    "starting and ending with a letter or digit)");
    out.namespace_name = ns;
  } else {
    name = head;
  }
  if (name.empty()) fail(uri, std::string("missing PVC name") + expected);
  if (!is_dns_subdomain(name))
    fail(uri, "PVC name '" + printable(name) +
                  "' is not a valid Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)");
  if (!has_slash) fail(uri, std::string("missing subpath") + expected);
  out.name = name;
  out.subpath = clean_path(uri, sub, "subpath", false);
  return out;
}

LocalStorageUri parse_local(std::string_view uri, std::string_view rest) {
  LocalStorageUri out;
  if (rest.empty()) fail(uri, "missing path (expected local:///<absolute path>)");
  if (rest.front() != '/')
    fail(uri, "path '" + printable(rest) +
                  "' is relative; a local URI names an absolute path with three slashes: local:///<absolute path>");
  std::string tail = clean_path(uri, rest.substr(1), "path", true);
  out.path = "/" + tail;
  return out;
}

VendorStorageUri parse_vendor(std::string_view uri, std::string_view rest) {
  constexpr const char* expected = " (expected vendor://<vendor>/<resource type>/<resource path>)";
  VendorStorageUri out;
  if (rest.empty()) fail(uri, std::string("missing vendor name") + expected);
  bool s1 = false, s2 = false;
  auto [vendor, after_vendor] = split_once(rest, '/', &s1);
  auto [type, path] = split_once(after_vendor, '/', &s2);
  if (vendor.empty()) fail(uri, std::string("empty vendor name") + expected);
  if (!s1 || type.empty()) fail(uri, std::string("missing resource type") + expected);
  if (!s2 || path.empty()) fail(uri, std::string("missing resource path") + expected);
  for (auto [part, what] : {std::pair{vendor, "vendor name"}, std::pair{type, "resource type"}})
    if (!all_of(part, is_name_char) || part == "." || part == "..")
      fail(uri, std::string(what) + " '" + printable(part) + "' may only contain letters, digits, '-', '_' and '.'");
  out.vendor = vendor;
  out.resource_type = type;
  out.resource_path = clean_path(uri, path, "resource path", false);
  return out;
}

// S3 bucket naming rules: 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or
// digit, no "..".
void check_s3_bucket(std::string_view uri, std::string_view bucket) {
  if (bucket.empty()) fail(uri, "missing bucket name (expected s3://<bucket>[@<region>][/<prefix>])");
  if (bucket.size() < 3 || bucket.size() > 63 || !is_lower_alnum(bucket.front()) || !is_lower_alnum(bucket.back()) ||
      !all_of(bucket, [](char c) { return is_lower_alnum(c) || c == '.' || c == '-'; }) ||
      bucket.find("..") != std::string_view::npos)
    fail(uri, "S3 bucket name '" + printable(bucket) +
                  "' must be 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit");
}

S3StorageUri parse_s3(std::string_view uri, std::string_view rest) {
  S3StorageUri out;
  bool has_slash = false;
  auto [head, prefix] = split_once(rest, '/', &has_slash);
  bool has_at = false;
  auto [bucket, region] = split_once(head, '@', &has_at);
  check_s3_bucket(uri, bucket);
  if (has_at) check_region(uri, region);
  out.bucket = bucket;
  out.region = region;
  out.prefix = clean_path(uri, prefix, "object prefix", true);
  return out;
}

// GCS bucket naming rules: lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or
// digit; 3-63 characters, or up to 222 when dotted with every dot-separated part at most 63.
void check_gcs_bucket(std::string_view uri, std::string_view bucket) {
  if (bucket.empty()) fail(uri, "missing bucket name (expected gs://<bucket>[/<prefix>])");
  bool dotted = bucket.find('.') != std::string_view::npos;
  bool ok = bucket.size() >= 3 && bucket.size() <= (dotted ? 222u : 63u) && is_lower_alnum(bucket.front()) &&
            is_lower_alnum(bucket.back()) &&
            all_of(bucket, [](char c) { return is_lower_alnum(c) || c == '-' || c == '_' || c == '.'; });
  size_t start = 0;
  while (ok) {
    size_t dot = bucket.find('.', start);
    size_t len = (dot == std::string_view::npos ? bucket.size() : dot) - start;
    ok = len >= 1 && len <= 63;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (!ok)
    fail(uri, "GCS bucket name '" + printable(bucket) +
                  "' must be 3-63 lowercase letters, digits, '-', '_' or '.' (up to 222 when dotted), starting and "
                  "ending with a letter or digit");
}

GcsStorageUri parse_gcs(std::string_view uri, std::string_view rest) {
  GcsStorageUri out;
  bool has_slash = false;
  auto [bucket, prefix] = split_once(rest, '/', &has_slash);
  check_gcs_bucket(uri, bucket);
  out.bucket = bucket;
  out.prefix = clean_path(uri, prefix, "object prefix", true);
  return out;
}

AzureStorageUri parse_azure(std::string_view uri, std::string_view rest) {
  constexpr const char* expected =
      " (expected az://<account>.blob.core.windows.net/<container>[/<path>] or az://<account>/<container>[/<path>])";
  constexpr std::string_view kBlobHost = ".blob.core.windows.net";
  AzureStorageUri out;
  bool s1 = false, s2 = false;
  auto [host, after_host] = split_once(rest, '/', &s1);
  auto [container, path] = split_once(after_host, '/', &s2);
  std::string_view account = host;
  if (host.find('.') != std::string_view::npos) {
    if (host.size() <= kBlobHost.size() || host.substr(host.size() - kBlobHost.size()) != kBlobHost)
      fail(uri, "Azure host '" + printable(host) + "' is not <account>.blob.core.windows.net" + expected);
    account = host.substr(0, host.size() - kBlobHost.size());
  }
  if (account.empty()) fail(uri, std::string("missing storage account") + expected);
  if (account.size() < 3 || account.size() > 24 || !all_of(account, is_lower_alnum))
    fail(uri, "Azure storage account '" + printable(account) + "' must be 3-24 lowercase letters or digits");
  if (!s1 || container.empty()) fail(uri, std::string("missing container") + expected);
  if (container.size() < 3 || container.size() > 63 || !is_lower_alnum(container.front()) ||
      !is_lower_alnum(container.back()) || !all_of(container, [](char c) { return is_lower_alnum(c) || c == '-'; }) ||
      container.find("--") != std::string_view::npos)
    fail(uri, "Azure container '" + printable(container) +
                  "' must be 3-63 lowercase letters, digits or single '-', starting and ending with a letter or digit");
  out.account = account;
  out.container = container;
  out.path = clean_path(uri, path, "blob path", true);
  return out;
}

GitHubStorageUri parse_github(std::string_view uri, std::string_view rest) {
  constexpr const char* expected = " (expected github://<owner>/<repo>[@<tag>])";
  GitHubStorageUri out;
  bool has_at = false;
  auto [repo_path, tag] = split_once(rest, '@', &has_at);
  bool has_slash = false;
  auto [owner, repo] = split_once(repo_path, '/', &has_slash);
  if (owner.empty()) fail(uri, std::string("missing owner") + expected);
  if (owner.size() > 39 || owner.front() == '-' || owner.back() == '-' || owner.find("--") != std::string_view::npos ||
      !all_of(owner, [](char c) { return is_alnum(c) || c == '-'; }))
    fail(uri, "GitHub owner '" + printable(owner) +
                  "' must be at most 39 letters, digits or single '-', not starting or ending with '-'");
  if (!has_slash || repo.empty()) fail(uri, std::string("missing repository") + expected);
  if (repo.find('/') != std::string_view::npos) fail(uri, std::string("too many path segments") + expected);
  if (repo.size() > 100 || !all_of(repo, is_name_char) || repo == "." || repo == "..")
    fail(uri, "GitHub repository '" + printable(repo) + "' must be at most 100 letters, digits, '-', '_' or '.'");
  if (has_at && tag.empty()) fail(uri, "empty tag after '@'");
  if (has_at) check_ref(uri, tag, "tag");
  out.owner = owner;
  out.repo = repo;
  out.tag = has_at ? std::string(tag) : "latest";
  return out;
}

template <class T>
StorageUri finish(T value, std::string_view uri) {
  value.uri = std::string(uri);
  return value;
}

}  // namespace

StorageUri parse_storage_uri(std::string_view uri) {
  if (uri.empty()) throw InvalidStorageUri("unknown storage type: the storage URI is empty (supported schemes: " +
                                           std::string(kSupportedSchemes) + ")");
  check_bytes(uri);
  size_t sep = uri.find("://");
  if (sep == std::string_view::npos)
    throw InvalidStorageUri("unknown storage type for URI '" + printable(uri) +
                            "': no '<scheme>://' prefix (supported schemes: " + std::string(kSupportedSchemes) + ")");
  std::string_view scheme = uri.substr(0, sep);
  std::string_view rest = uri.substr(sep + 3);
  if (scheme == "oci") return finish(parse_oci(uri, rest), uri);
  if (scheme == "hf") return finish(parse_hf(uri, rest), uri);
  if (scheme == "pvc") return finish(parse_pvc(uri, rest), uri);
  if (scheme == "local") return finish(parse_local(uri, rest), uri);
  if (scheme == "vendor") return finish(parse_vendor(uri, rest), uri);
  if (scheme == "s3") return finish(parse_s3(uri, rest), uri);
  if (scheme == "gs") return finish(parse_gcs(uri, rest), uri);
  if (scheme == "az") return finish(parse_azure(uri, rest), uri);
  if (scheme == "github") return finish(parse_github(uri, rest), uri);
  throw InvalidStorageUri("unknown storage type '" + printable(scheme) + "' in storage URI '" + printable(uri) +
                          "' (supported schemes, lowercase: " + std::string(kSupportedSchemes) + ")");
}

std::string_view storage_scheme(const StorageUri& uri) {
  static constexpr std::string_view names[] = {"oci", "hf", "pvc", "local", "vendor", "s3", "gs", "az", "github"};
  static_assert(std::size(names) == std::variant_size_v<StorageUri>);
  return names[uri.index()];
}

const std::string& storage_uri_text(const StorageUri& uri) {
  return std::visit([](const auto& v) -> const std::string& { return v.uri; }, uri);
}

}  // namespace modelagent
