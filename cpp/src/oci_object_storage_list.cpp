// Object Storage API calls (GetNamespace, ListObjects, HeadObject), their parsing and error mapping.

#include <nlohmann/json.hpp>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/oci_object_storage.hpp"

namespace modelagent::oci {

namespace {

using nlohmann::json;

constexpr int kMaxPages = 1000000;

json parse_json(std::string_view body, const std::string& url) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    throw DownloadError("unexpected response from " + url + ": not JSON (" + e.what() + ")");
  }
}

std::string optional_string(const json& entry, const char* field, const std::string& where) {
  auto it = entry.find(field);
  if (it == entry.end() || it->is_null()) return "";
  if (!it->is_string()) throw DownloadError(where + ": field '" + field + "' is not a string");
  return it->get<std::string>();
}

std::string where_object(const ErrorContext& c) {
  if (c.bucket.empty()) return "the tenancy namespace (GetNamespace)";
  std::string out = "namespace '" + c.namespace_name + "', bucket '" + c.bucket + "'";
  if (!c.object.empty()) out = "object '" + c.object + "' in " + out;
  return out;
}

HttpRequest api_request(const ClientOptions& options, const std::string& url, const std::string& method = "GET") {
  HttpRequest request;
  request.method = method;
  request.url = url;
  request.timeout_seconds = options.request_timeout_seconds;
  request.signer = options.signer;
  request.headers.emplace_back("Accept", "application/json");
  return request;
}

std::string principal_of(const ClientOptions& options) {
  return options.signer ? options.signer->describe() : std::string("no credentials");
}

}  // namespace

ListPage parse_list_page(std::string_view body, const std::string& url) {
  json doc = parse_json(body, url);
  if (!doc.is_object()) throw DownloadError("unexpected response from " + url + ": expected a JSON object");
  ListPage page;
  auto objects = doc.find("objects");
  if (objects == doc.end() || !objects->is_array()) {
    throw DownloadError("unexpected response from " + url + ": field 'objects' is missing or not an array");
  }
  page.objects.reserve(objects->size());
  size_t index = 0;
  for (const json& entry : *objects) {
    const std::string where = "object #" + std::to_string(index++) + " of the listing from " + url;
    if (!entry.is_object()) throw DownloadError(where + " is not a JSON object");
    ObjectSummary o;
    auto name = entry.find("name");
    if (name == entry.end() || !name->is_string() || name->get<std::string>().empty()) {
      throw DownloadError(where + ": field 'name' is missing or not a non-empty string");
    }
    o.name = name->get<std::string>();
    const std::string at = where + " ('" + o.name + "')";
    auto size = entry.find("size");
    if (size == entry.end() || size->is_null()) throw DownloadError(at + ": field 'size' is missing");
    if (!size->is_number_integer() || (size->is_number_integer() && !size->is_number_unsigned() && size->get<int64_t>() < 0)) {
      throw DownloadError(at + ": field 'size' is not a non-negative integer");
    }
    o.size = size->get<uint64_t>();
    o.etag = optional_string(entry, "etag", at);
    o.md5 = optional_string(entry, "md5", at);
    o.time_created = optional_string(entry, "timeCreated", at);
    o.time_modified = optional_string(entry, "timeModified", at);
    o.storage_tier = optional_string(entry, "storageTier", at);
    o.archival_state = optional_string(entry, "archivalState", at);
    page.objects.push_back(std::move(o));
  }
  page.next_start_with = optional_string(doc, "nextStartWith", "the listing from " + url);
  return page;
}

std::string parse_namespace(std::string_view body, const std::string& url) {
  json doc = parse_json(body, url);
  if (!doc.is_string() || doc.get<std::string>().empty()) {
    throw DownloadError("unexpected response from " + url + ": expected the namespace as a JSON string");
  }
  return doc.get<std::string>();
}

ObjectHead parse_head(const HttpResponse& r) {
  ObjectHead h;
  std::string length = r.header("content-length");
  if (!length.empty()) {
    try {
      size_t used = 0;
      h.size = std::stoull(length, &used);
      if (used != length.size()) h.size = kUnknownSize;
    } catch (const std::exception&) {
      h.size = kUnknownSize;
    }
  }
  h.etag = r.header("etag");
  h.content_md5 = r.header("content-md5");
  h.multipart_md5 = r.header("opc-multipart-md5");
  h.meta_md5 = r.header("opc-meta-md5");
  h.archival_state = r.header("archival-state");
  return h;
}

void raise_for_status(const HttpResponse& r, const std::string& url, const ErrorContext& c) {
  if (r.status >= 100 && r.status < 300) return;
  std::string code;
  std::string message;
  try {
    json doc = json::parse(r.body);
    if (doc.is_object()) {
      if (auto it = doc.find("code"); it != doc.end() && it->is_string()) code = it->get<std::string>();
      if (auto it = doc.find("message"); it != doc.end() && it->is_string()) message = it->get<std::string>();
    }
  } catch (const json::exception&) {
    // Not the service's error JSON (a proxy page, HEAD without a body); the status still tells.
  }
  std::string tail = " (HTTP " + std::to_string(r.status);
  if (!code.empty()) tail += " " + code;
  if (!message.empty()) tail += ": " + message;
  std::string request_id = r.header("opc-request-id");
  if (!request_id.empty()) tail += "; opc-request-id " + request_id;
  tail += ") at " + url;

  if (r.status == 401) {
    throw CredentialsError("OCI Object Storage rejected the credentials of " +
                           (c.principal.empty() ? std::string("the request") : c.principal) + " for " +
                           where_object(c) + ": the signature did not verify (wrong key, fingerprint or OCID, " +
                           "expired session token) or the clock is more than 5 minutes off" + tail);
  }
  if (r.status == 429) {
    double wait = server_requested_wait(r);
    throw RateLimitedError("rate limited by OCI Object Storage while accessing " + where_object(c) + tail, url,
                           wait < 0 ? 0 : wait);
  }
  if (r.status == 404) {
    std::string what;
    if (code == "ObjectNotFound" || (code.empty() && !c.object.empty())) {
      what = "object not found: " + where_object(c);
    } else if (code == "BucketNotFound") {
      what = "bucket not found: " + where_object(c);
    } else {
      what = where_object(c) + " not found, or the principal " +
             (c.principal.empty() ? std::string() : "(" + c.principal + ") ") + "is not authorized to read it";
    }
    throw HttpStatusError(what + tail, r.status, url);
  }
  throw HttpStatusError("OCI Object Storage request failed for " + where_object(c) + tail, r.status, url);
}

std::string get_namespace(const ClientOptions& options, CancelToken* cancel, DownloadProgress* progress) {
  std::string url = namespace_url(options.endpoint);
  HttpResponse r = http_request(api_request(options, url), options.retry, options.http, cancel, progress);
  raise_for_status(r, url, {"", "", "", principal_of(options)});
  return parse_namespace(r.body, url);
}

std::vector<ObjectSummary> list_objects(const ClientOptions& options, const std::string& namespace_name,
                                        const std::string& bucket, const std::string& prefix, CancelToken* cancel,
                                        DownloadProgress* progress) {
  if (options.page_size < 1 || options.page_size > kMaxPageSize) {
    throw DownloadError("ListObjects page size must be within 1.." + std::to_string(kMaxPageSize) + ", got " +
                        std::to_string(options.page_size));
  }
  std::vector<ObjectSummary> out;
  std::string start;
  for (int page = 0; page < kMaxPages; ++page) {
    std::string url = list_url(options.endpoint, namespace_name, bucket, prefix, start, options.page_size);
    HttpResponse r = http_request(api_request(options, url), options.retry, options.http, cancel, progress);
    raise_for_status(r, url, {namespace_name, bucket, "", principal_of(options)});
    ListPage parsed = parse_list_page(r.body, url);
    for (auto& o : parsed.objects) out.push_back(std::move(o));
    if (parsed.next_start_with.empty()) return out;
    if (parsed.next_start_with <= start) {
      throw DownloadError("ListObjects pagination does not advance at " + url + ": nextStartWith '" +
                          parsed.next_start_with + "' after start '" + start + "'");
    }
    start = parsed.next_start_with;
  }
  throw DownloadError("ListObjects for namespace '" + namespace_name + "', bucket '" + bucket + "' returned more than " +
                      std::to_string(kMaxPages) + " pages");
}

ObjectHead head_object(const ClientOptions& options, const std::string& namespace_name, const std::string& bucket,
                       const std::string& object_name, CancelToken* cancel,
                       DownloadProgress* progress) {
  std::string url = object_url(options.endpoint, namespace_name, bucket, object_name);
  HttpResponse r = http_request(api_request(options, url, "HEAD"), options.retry, options.http, cancel, progress);
  raise_for_status(r, url, {namespace_name, bucket, object_name, principal_of(options)});
  return parse_head(r);
}

}  // namespace modelagent::oci
