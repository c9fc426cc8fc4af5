// OCI Object Storage URIs, endpoints and request URLs.

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <variant>

#include "modelagent/errors.hpp"
#include "modelagent/huggingface.hpp"
#include "modelagent/oci_object_storage.hpp"
#include "modelagent/storage_uri.hpp"

namespace modelagent::oci {

namespace {

std::string strip_trailing_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

Location parse_uri(std::string_view uri) {
  StorageUri parsed = parse_storage_uri(uri);
  const auto* oci = std::get_if<OciStorageUri>(&parsed);
  if (oci == nullptr) {
    throw InvalidStorageUri("invalid OCI storage URI '" + std::string(uri) + "': the scheme is '" +
                            std::string(storage_scheme(parsed)) + "', not 'oci'");
  }
  return Location{oci->namespace_name, oci->bucket, oci->prefix, oci->region};
}

std::string endpoint_for_region(const std::string& region) {
  if (region.empty()) throw std::invalid_argument("OCI region is empty");
  for (char c : region) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) throw std::invalid_argument("OCI region '" + region + "' may only contain letters, digits and '-'");
  }
  return "https://objectstorage." + region + ".oraclecloud.com";
}

std::string resolve_endpoint(const std::string& explicit_endpoint, const std::string& region) {
  if (!explicit_endpoint.empty()) return strip_trailing_slashes(explicit_endpoint);
  const char* env = std::getenv(kEndpointEnv);
  if (env != nullptr && *env != '\0') return strip_trailing_slashes(env);
  if (region.empty()) {
    throw CredentialsError(std::string("no OCI region to derive the Object Storage endpoint from: set parameter "
                                       "'region' (or the principal's region) or ") +
                           kEndpointEnv);
  }
  try {
    return endpoint_for_region(region);
  } catch (const std::invalid_argument& e) {
    throw CredentialsError(e.what());
  }
}

std::string encode_path_parameter(std::string_view text) { return hf::percent_encode(text, false); }

std::string directory_prefix(const std::string& prefix) {
  std::string p = strip_trailing_slashes(prefix);
  return p.empty() ? p : p + "/";
}

std::string namespace_url(const std::string& endpoint) { return endpoint + "/n/"; }

std::string object_url(const std::string& endpoint, const std::string& namespace_name, const std::string& bucket,
                       const std::string& object_name) {
  return endpoint + "/n/" + encode_path_parameter(namespace_name) + "/b/" + encode_path_parameter(bucket) + "/o/" +
         encode_path_parameter(object_name);
}

std::string list_url(const std::string& endpoint, const std::string& namespace_name, const std::string& bucket,
                     const std::string& prefix, const std::string& start, int limit) {
  std::string url = endpoint + "/n/" + encode_path_parameter(namespace_name) + "/b/" + encode_path_parameter(bucket) +
                    "/o?fields=" + encode_path_parameter(kListFields);
  if (!prefix.empty()) url += "&prefix=" + encode_path_parameter(prefix);
  url += "&limit=" + std::to_string(limit);
  if (!start.empty()) url += "&start=" + encode_path_parameter(start);
  return url;
}

}  // namespace modelagent::oci
