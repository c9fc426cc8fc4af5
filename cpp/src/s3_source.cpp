// The S3 source: region/endpoint resolution, ListObjectsV2, S3 error documents, keys -> paths,
// ETags -> digests, and the download plan.

#include <algorithm>
#include <cctype>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "modelagent/ascii_text.hpp"
#include "modelagent/digest.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/glob_match.hpp"
#include "modelagent/parallel_for.hpp"
#include "modelagent/path_safety.hpp"
#include "modelagent/s3.hpp"

namespace modelagent::s3 {

namespace {

std::optional<std::string> env_value(const EnvLookup& env, const char* name) {
  auto v = env(name);
  if (v && !trim_space(*v).empty()) return trim_space(*v);
  return std::nullopt;
}

std::optional<bool> parse_bool(const std::string& text) {
  std::string t = ascii_lower(trim_space(text));
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  return std::nullopt;
}

// Region of the profile in the AWS config file; "" when there is no such file, profile or key.
std::string config_file_region(const std::string& profile, const EnvLookup& env) {
  auto explicit_path = env_value(env, "AWS_CONFIG_FILE");
  std::string path = explicit_path ? *explicit_path : "";
  if (path.empty()) {
    auto home = env_value(env, "HOME");
    if (!home) return "";
    path = *home + "/.aws/config";
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CredentialsError("cannot read the AWS config file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  IniFile ini = parse_ini(ss.str(), path);
  auto it = profile == "default" ? ini.find("default") : ini.find("profile " + profile);
  if (it == ini.end()) return "";
  auto region = it->second.find("region");
  return region == it->second.end() ? "" : region->second;
}

const XmlElement& required(const XmlElement& parent, const char* name, const std::string& url) {
  const XmlElement* e = parent.child(name);
  if (!e) throw DownloadError(url + ": ListObjectsV2 answer has a <" + parent.name + "> without <" + name + ">");
  return *e;
}

bool is_archived(const std::string& storage_class) {
  return storage_class == "GLACIER" || storage_class == "DEEP_ARCHIVE";
}

bool is_hex32(std::string_view s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

std::string ResolvedConfig::bucket_url() const {
  if (path_style) return endpoint + "/" + bucket + "/";
  size_t sep = endpoint.find("://");
  return endpoint.substr(0, sep + 3) + bucket + "." + endpoint.substr(sep + 3) + "/";
}

std::string ResolvedConfig::object_url(std::string_view key) const { return bucket_url() + uri_encode(key, true); }

ResolvedConfig resolve_config(const S3StorageUri& uri, const SourceParameters& parameters, const EnvLookup& env) {
  ResolvedConfig c;
  c.bucket = uri.bucket;
  c.prefix = uri.prefix;
  c.profile = !trim_space(parameters.profile).empty() ? trim_space(parameters.profile)
                                                  : env_value(env, "AWS_PROFILE").value_or("default");
  if (!uri.region.empty()) c.region = uri.region;
  else if (!trim_space(parameters.region).empty()) c.region = trim_space(parameters.region);
  else if (auto r = env_value(env, "AWS_REGION")) c.region = *r;
  else if (auto r2 = env_value(env, "AWS_DEFAULT_REGION")) c.region = *r2;
  else c.region = config_file_region(c.profile, env);
  if (c.region.empty()) c.region = "us-east-1";

  std::string endpoint;
  const char* endpoint_source = "parameter endpoint";
  if (!trim_space(parameters.endpoint).empty()) {
    endpoint = trim_space(parameters.endpoint);
  } else if (auto e = env_value(env, "AWS_ENDPOINT_URL_S3")) {
    endpoint = *e;
    endpoint_source = "AWS_ENDPOINT_URL_S3";
  } else if (auto e2 = env_value(env, "AWS_ENDPOINT_URL")) {
    endpoint = *e2;
    endpoint_source = "AWS_ENDPOINT_URL";
  }
  bool custom = !endpoint.empty();
  if (custom) {
    std::string l = ascii_lower(endpoint);
    if (!l.starts_with("http://") && !l.starts_with("https://")) {
      throw InvalidStorageUri(std::string(endpoint_source) + " '" + endpoint + "' must start with http:// or https://");
    }
    if (endpoint.find_first_of("?#") != std::string::npos) {
      throw InvalidStorageUri(std::string(endpoint_source) + " '" + endpoint + "' must not have a query or fragment");
    }
    while (endpoint.back() == '/') endpoint.pop_back();
    if (endpoint.find("://") + 3 == endpoint.size()) {
      throw InvalidStorageUri(std::string(endpoint_source) + " '" + endpoint + "' has no host");
    }
    c.endpoint = endpoint;
  } else {
    c.endpoint = "https://s3." + c.region + ".amazonaws.com";
  }
  if (!trim_space(parameters.path_style).empty()) {
    auto v = parse_bool(parameters.path_style);
    if (!v) throw InvalidStorageUri("parameter path_style '" + parameters.path_style + "' is not true or false");
    c.path_style = *v;
  } else {
    c.path_style = custom || c.bucket.find('.') != std::string::npos;
  }
  return c;
}

ListPage parse_list_objects_v2(std::string_view xml, const std::string& url) {
  XmlElement root = parse_xml(xml, url);
  if (root.name != "ListBucketResult") {
    throw DownloadError(url + ": expected a <ListBucketResult> document, got <" + root.name + ">");
  }
  bool url_encoded = false;
  if (const XmlElement* enc = root.child("EncodingType")) url_encoded = ascii_lower(trim_space(enc->text)) == "url";
  ListPage page;
  std::string truncated = ascii_lower(trim_space(required(root, "IsTruncated", url).text));
  if (truncated != "true" && truncated != "false") {
    throw DownloadError(url + ": <IsTruncated> is '" + truncated + "', not true or false");
  }
  page.truncated = truncated == "true";
  if (const XmlElement* token = root.child("NextContinuationToken")) page.next_continuation_token = token->text;
  if (page.truncated && page.next_continuation_token.empty()) {
    throw DownloadError(url + ": truncated ListObjectsV2 answer without <NextContinuationToken>");
  }
  for (const XmlElement* contents : root.children_named("Contents")) {
    ObjectInfo o;
    o.key = required(*contents, "Key", url).text;
    if (url_encoded) {
      try {
        o.key = uri_decode(o.key, true);
      } catch (const std::invalid_argument& e) {
        throw DownloadError(url + ": URL-encoded <Key> does not decode: " + e.what());
      }
    }
    if (o.key.empty()) throw DownloadError(url + ": an object with an empty <Key>");
    std::string size = trim_space(required(*contents, "Size", url).text);
    if (size.empty() || size.size() > 19 ||
        !std::all_of(size.begin(), size.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      throw DownloadError(url + ": <Size> '" + size + "' of " + o.key + " is not a byte count");
    }
    o.size = std::stoull(size);
    if (const XmlElement* etag = contents->child("ETag")) o.etag = trim_space(etag->text);
    if (const XmlElement* sc = contents->child("StorageClass")) o.storage_class = trim_space(sc->text);
    page.objects.push_back(std::move(o));
  }
  return page;
}

std::string describe_error_body(std::string_view body) {
  if (body.find('<') == std::string_view::npos) return "";
  try {
    XmlElement root = parse_xml(body, "error");
    const XmlElement* error = root.name == "Error" ? &root : root.child("Error");
    if (!error) return "";
    const XmlElement* code = error->child("Code");
    if (!code || trim_space(code->text).empty()) return "";
    const XmlElement* message = error->child("Message");
    std::string out = trim_space(code->text);
    if (message && !trim_space(message->text).empty()) out += ": " + trim_space(message->text);
    return out;
  } catch (const DownloadError&) {
    return "";
  }
}

void throw_s3_error(const HttpResponse& response, const std::string& method, const std::string& url,
                    const std::string& bucket) {
  std::string detail = describe_error_body(response.body);
  std::string code = detail.substr(0, detail.find(':'));
  if (detail.empty() && method == "HEAD") {
    // HEAD answers have no body; the status says enough.
    if (response.status == 404) detail = "NotFound";
    else if (response.status == 403) detail = "Forbidden";
  }
  std::string message = method + " " + url + ": HTTP " + std::to_string(response.status);
  if (code == "NoSuchBucket") message += ": bucket '" + bucket + "' does not exist (" + detail + ")";
  else if (!detail.empty()) message += " " + detail;
  if (code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId") {
    message += " (check the access key and secret key)";
  } else if (code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed") {
    message += " (is the region right? the bucket may live in another region; use s3://" + bucket +
               "@<region>/... or the region parameter)";
  }
  throw HttpStatusError(message, response.status, url);
}

Client::Client(ResolvedConfig config, std::shared_ptr<const SigV4Signer> signer, DownloadOptions http,
               RetryPolicy retry, CancelToken* cancel, DownloadProgress* progress)
    : config_(std::move(config)),
      signer_(std::move(signer)),
      http_(std::move(http)),
      retry_(retry),
      cancel_(cancel),
      progress_(progress) {}

std::vector<ObjectInfo> Client::list_objects(int max_keys) const {
  if (max_keys < 1 || max_keys > 1000) throw std::invalid_argument("max_keys must be 1..1000");
  std::string prefix = config_.prefix.empty() ? "" : config_.prefix + "/";
  std::vector<ObjectInfo> out;
  std::string token;
  for (int page = 0;; ++page) {
    std::string url = config_.bucket_url() + "?list-type=2&encoding-type=url&max-keys=" + std::to_string(max_keys);
    if (!prefix.empty()) url += "&prefix=" + uri_encode(prefix, false);
    if (!token.empty()) url += "&continuation-token=" + uri_encode(token, false);
    HttpRequest request;
    request.url = url;
    request.signer = signer_;
    HttpResponse response = http_request(request, retry_, http_, cancel_, progress_);
    if (response.status != 200) throw_s3_error(response, "GET", url, config_.bucket);
    ListPage p = parse_list_objects_v2(response.body, url);
    for (auto& o : p.objects) out.push_back(std::move(o));
    if (!p.truncated) break;
    if (p.next_continuation_token == token) {
      throw DownloadError(url + ": ListObjectsV2 returned the same continuation token again");
    }
    token = p.next_continuation_token;
  }
  return out;
}

HttpResponse Client::head_object(const std::string& key, int part_number) const {
  HttpRequest request;
  request.method = "HEAD";
  request.url = config_.object_url(key);
  if (part_number > 0) request.url += "?partNumber=" + std::to_string(part_number);
  request.signer = signer_;
  HttpResponse response = http_request(request, retry_, http_, cancel_, progress_);
  if (response.status < 200 || response.status >= 300) {
    throw_s3_error(response, "HEAD", request.url, config_.bucket);
  }
  return response;
}

std::optional<std::string> key_to_path(const std::string& key, const std::string& prefix) {
  if (!key.empty() && key.back() == '/') return std::nullopt;
  std::string_view rest = key;
  if (!prefix.empty()) {
    if (!rest.starts_with(prefix) || rest.size() <= prefix.size() || rest[prefix.size()] != '/') return std::nullopt;
    rest.remove_prefix(prefix.size() + 1);
  }
  std::string path(rest);
  try {
    check_safe_relative_name(path);
  } catch (const UnsafePathError& e) {
    throw UnsafePathError("S3 object key '" + printable(key) + "' cannot be a file name: " + e.what());
  }
  return path;
}

std::optional<Digest> digest_from_etag(const std::string& etag, const std::string& sse, std::string& reason) {
  std::string e = trim_space(etag);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  std::string s = ascii_lower(trim_space(sse));
  if (s.starts_with("aws:kms")) {
    reason = "encrypted with SSE-KMS (x-amz-server-side-encryption: " + trim_space(sse) + "): its ETag is not an MD5";
    return std::nullopt;
  }
  if (!s.empty() && s != "aes256") {
    reason = "server-side encryption '" + trim_space(sse) + "': its ETag is not an MD5";
    return std::nullopt;
  }
  Digest d;
  size_t dash = e.find('-');
  if (dash == std::string::npos && is_hex32(e)) {
    d.kind = DigestKind::Md5;
    d.value = ascii_lower(e);
    return d;
  }
  if (dash != std::string::npos && is_hex32(e.substr(0, dash))) {
    std::string n = e.substr(dash + 1);
    if (!n.empty() && n.size() <= 5 && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      unsigned long parts = std::stoul(n);
      if (parts >= 1 && parts <= 10000) {
        d.kind = DigestKind::Md5Multipart;
        d.value = ascii_lower(e.substr(0, dash));
        d.parts = static_cast<uint32_t>(parts);
        return d;
      }
    }
  }
  reason = e.empty() ? "no ETag" : "ETag '" + e + "' is neither an MD5 nor a multipart MD5";
  return std::nullopt;
}

namespace {

// N of a multipart ETag "<md5>-N" (quotes allowed), 0 for any other form.
uint32_t multipart_etag_parts(std::string_view quoted) {
  std::string trimmed = trim_space(quoted);
  std::string_view etag = trimmed;
  size_t dash = etag.rfind('-');
  if (dash == std::string_view::npos) return 0;
  std::string_view n = etag.substr(dash + 1);
  if (!n.empty() && n.back() == '"') n.remove_suffix(1);
  if (n.empty() || n.size() > 5 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return static_cast<uint32_t>(std::stoul(std::string(n)));
}

// Objects with more parts than this whose parts differ in size are not measured part by part.
constexpr uint32_t kMaxPartsToMeasure = 1000;

// A part's size from a `HEAD ?partNumber=k`, when its answer is about the same `parts`-part object.
std::optional<uint64_t> part_length(const HttpResponse& part, uint32_t parts) {
  std::string count = trim_space(part.header("x-amz-mp-parts-count"));
  if (!count.empty() && count != std::to_string(parts)) return std::nullopt;
  std::string length = trim_space(part.header("content-length"));
  if (length.empty() || length.size() > 19 ||
      !std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint64_t size = std::stoull(length);
  return size == 0 ? std::nullopt : std::optional<uint64_t>(size);
}

// How a multipart object was cut, from the HEADs of its parts.
struct PartLayout {
  uint32_t parts = 0;
  std::optional<HttpResponse> first;  // HEAD ?partNumber=1; none when the store does not answer partNumber
  std::optional<HttpResponse> last;   // HEAD ?partNumber=N
  std::vector<uint64_t> lengths;      // every part's size, measured when the parts differ
  std::string problem;                // why the parts could not be measured
};

// Puts the measured layout into `digest` (a part size, or every part's length); returns why the object
// cannot be verified instead, or "" when the store's answers leave the part size to inference.
std::string apply_part_layout(const PartLayout& layout, uint64_t size, Digest& digest) {
  if (!layout.problem.empty()) return layout.problem;
  auto first = part_length(*layout.first, layout.parts);
  if (!first) return "";
  if (layout.lengths.empty()) {
    if (part_size_fits(*first, size, layout.parts)) {
      digest.part_size = *first;
      return "";
    }
    return "multipart object whose parts differ in size (part 1 is " + std::to_string(*first) + " bytes; " +
           std::to_string(layout.parts) + " equal parts cannot make " + std::to_string(size) + " bytes)";
  }
  unsigned __int128 total = 0;
  for (uint64_t length : layout.lengths) total += length;
  if (total != size) {
    return "multipart object whose " + std::to_string(layout.parts) + " parts add up to " +
           std::to_string(static_cast<uint64_t>(std::min<unsigned __int128>(total, UINT64_MAX))) +
           " bytes, not its " + std::to_string(size);
  }
  digest.part_lengths = layout.lengths;
  return "";
}

std::string unmeasured(uint32_t part, const std::string& why) {
  return "multipart object whose parts differ in size and could not be measured: HEAD ?partNumber=" +
         std::to_string(part) + " " + why;
}

}  // namespace

S3Plan plan_download(const Client& client, const PlanOptions& options) {
  for (const auto& p : options.include) validate_glob(p);
  for (const auto& p : options.exclude) validate_glob(p);
  const ResolvedConfig& config = client.config();
  std::vector<ObjectInfo> listed = client.list_objects(options.max_keys);
  if (listed.empty()) {
    throw DownloadError("no objects under s3://" + config.bucket + "/" + config.prefix + (config.prefix.empty() ? "" : "/") +
                        " (" + config.bucket_url() + ")");
  }
  S3Plan out;
  std::vector<std::string> paths;
  for (auto& o : listed) {
    auto path = key_to_path(o.key, config.prefix);
    if (!path) {
      out.excluded.emplace_back(o.key, o.key.ends_with("/") ? "folder marker" : "outside the prefix");
      continue;
    }
    if (*path == kStateDirName || path->starts_with(std::string(kStateDirName) + "/")) {
      out.excluded.emplace_back(o.key, "reserved path");
      continue;
    }
    if (!options.include.empty() && !glob_match_any(options.include, *path)) {
      out.excluded.emplace_back(o.key, "not included");
      continue;
    }
    auto hit = std::find_if(options.exclude.begin(), options.exclude.end(),
                            [&](const std::string& p) { return glob_match(p, *path); });
    if (hit != options.exclude.end()) {
      out.excluded.emplace_back(o.key, "excluded by pattern '" + *hit + "'");
      continue;
    }
    paths.push_back(*path);
    out.objects.push_back(std::move(o));
  }

  // HEAD every object (bounded concurrency): encryption decides whether the ETag is an MD5, and archived
  // objects are readable only once restored. A multipart ETag does not say how the object was cut; the HEADs
  // of its first and last part do when all parts but the last have one size, and otherwise every part is
  // measured. Stores without partNumber support leave the part size to inference from the size and count.
  std::vector<HttpResponse> heads(out.objects.size());
  std::vector<PartLayout> layouts(out.objects.size());
  parallel_for(out.objects.size(), options.head_concurrency, [&](size_t i) {
    const std::string& key = out.objects[i].key;
    heads[i] = client.head_object(key);
    PartLayout& layout = layouts[i];
    layout.parts = options.verify_etag ? multipart_etag_parts(heads[i].header("etag")) : 0;
    if (layout.parts < 2) return;
    try {
      layout.first = client.head_object(key, 1);
    } catch (const HttpStatusError&) {
      return;
    }
    try {
      layout.last = client.head_object(key, static_cast<int>(layout.parts));
    } catch (const HttpStatusError&) {
      // Part 1 alone then decides: one part size, or parts that differ.
    }
  });

  for (size_t i = 0; i < out.objects.size(); ++i) {
    ObjectInfo& o = out.objects[i];
    const HttpResponse& head = heads[i];
    // The object may have been replaced since the listing: what HEAD says is what GET will return.
    if (!head.header("etag").empty()) o.etag = head.header("etag");
    if (std::string length = head.header("content-length"); !length.empty()) {
      try {
        o.size = std::stoull(length);
      } catch (const std::exception&) {
        throw DownloadError("HEAD " + config.object_url(o.key) + ": bad Content-Length '" + length + "'");
      }
    }
    std::string storage_class = o.storage_class.empty() ? head.header("x-amz-storage-class") : o.storage_class;
    if (is_archived(storage_class) && head.header("x-amz-restore").find("ongoing-request=\"false\"") == std::string::npos) {
      throw DownloadError("s3://" + config.bucket + "/" + o.key + " is in the " + storage_class +
                          " storage class and not restored; restore it (S3 RestoreObject) before downloading");
    }
    if (!head.header("x-amz-server-side-encryption-customer-algorithm").empty()) {
      throw DownloadError("s3://" + config.bucket + "/" + o.key +
                          " is encrypted with a customer-provided key (SSE-C), which this agent does not support");
    }
  }

  // Objects whose first and last part do not fit one part size: measure the parts in between.
  std::vector<std::pair<size_t, uint32_t>> to_measure;  // (object, part number)
  for (size_t i = 0; i < out.objects.size(); ++i) {
    PartLayout& layout = layouts[i];
    if (!layout.first || !layout.last) continue;
    uint64_t size = out.objects[i].size;
    auto first = part_length(*layout.first, layout.parts);
    auto last = part_length(*layout.last, layout.parts);
    if (!first || !last) continue;
    if (part_size_fits(*first, size, layout.parts) && *last == size - (layout.parts - 1) * *first) continue;
    if (layout.parts > kMaxPartsToMeasure) {
      layout.problem = "multipart object whose parts differ in size (part 1 is " + std::to_string(*first) +
                       " bytes, part " + std::to_string(layout.parts) + " is " + std::to_string(*last) +
                       " bytes) and has more than " + std::to_string(kMaxPartsToMeasure) + " parts to measure";
      continue;
    }
    layout.lengths.assign(layout.parts, 0);
    layout.lengths.front() = *first;
    layout.lengths.back() = *last;
    for (uint32_t part = 2; part < layout.parts; ++part) to_measure.emplace_back(i, part);
  }
  std::mutex problem_lock;
  parallel_for(to_measure.size(), options.head_concurrency, [&](size_t t) {
    auto [i, part] = to_measure[t];
    PartLayout& layout = layouts[i];
    try {
      auto length = part_length(client.head_object(out.objects[i].key, static_cast<int>(part)), layout.parts);
      std::lock_guard lock(problem_lock);
      if (length) layout.lengths[part - 1] = *length;
      else if (layout.problem.empty()) layout.problem = unmeasured(part, "gave no part size");
    } catch (const HttpStatusError& e) {
      std::lock_guard lock(problem_lock);
      if (layout.problem.empty()) layout.problem = unmeasured(part, "answered " + std::to_string(e.status()));
    }
  });

  for (size_t i = 0; i < out.objects.size(); ++i) {
    const ObjectInfo& o = out.objects[i];
    const HttpResponse& head = heads[i];
    PlannedFile f;
    f.relative_path = paths[i];
    f.url = config.object_url(o.key);
    f.signer = client.signer();
    f.size = o.size;
    std::string reason = "ETag verification is off (parameter verify_etag=false)";
    if (!options.verify_etag) {
      out.unverifiable.emplace_back(f.relative_path, reason);
    } else if (auto d = digest_from_etag(o.etag, head.header("x-amz-server-side-encryption"), reason)) {
      f.digest = *d;
      const PartLayout& layout = layouts[i];
      if (d->kind == DigestKind::Md5Multipart && layout.first && layout.parts == d->parts) {
        if (std::string problem = apply_part_layout(layout, o.size, f.digest); !problem.empty()) {
          f.digest = Digest{};
          out.unverifiable.emplace_back(f.relative_path, problem);
        }
      }
    } else {
      out.unverifiable.emplace_back(f.relative_path, reason);
    }
    out.plan.files.push_back(std::move(f));
  }
  return out;
}

}  // namespace modelagent::s3
