// Bindings of the OCI Object Storage source (cpp/include/modelagent/oci_object_storage.hpp). The
// principal that signs the requests comes from register_oci_auth.cpp (any RequestSigner works).

#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "bindings.hpp"
#include "modelagent/oci_object_storage.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

oci::ClientOptions client_options(const std::string& endpoint, std::shared_ptr<RequestSigner> signer,
                                  const std::optional<DownloadOptions>& http, int page_size, double timeout,
                                  int max_attempts, double max_retry_seconds, int head_concurrency) {
  oci::ClientOptions o;
  o.endpoint = endpoint;
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  if (o.endpoint.empty()) throw py::value_error("OCI Object Storage endpoint is empty (see oci_endpoint())");
  o.signer = std::move(signer);
  if (http) {
    o.http = *http;
    o.retry.base_seconds = http->retry_base_seconds;
    o.retry.cap_seconds = http->retry_cap_seconds;
  }
  o.page_size = page_size;
  o.request_timeout_seconds = timeout;
  o.retry.max_attempts = max_attempts;
  o.retry.max_total_seconds = max_retry_seconds;
  o.head_concurrency = head_concurrency;
  return o;
}

py::dict summary_dict(const oci::ObjectSummary& o) {
  py::dict d;
  d["name"] = o.name;
  d["size"] = o.size;
  d["etag"] = o.etag;
  d["md5"] = o.md5;
  d["time_created"] = o.time_created;
  d["time_modified"] = o.time_modified;
  d["storage_tier"] = o.storage_tier;
  d["archival_state"] = o.archival_state;
  return d;
}

py::list pairs(const std::vector<oci::Skipped>& items) {
  py::list out;
  for (const auto& s : items) out.append(py::make_tuple(s.path, s.reason));
  return out;
}

}  // namespace

void register_oci(py::module_& m) {
  m.def(
      "oci_parse_uri",
      [](const std::string& uri) {
        auto l = oci::parse_uri(uri);
        return py::make_tuple(l.namespace_name, l.bucket, l.prefix, l.region);
      },
      py::arg("uri"),
      "oci://... (three forms) -> (namespace or '', bucket, prefix without trailing '/', region or ''); raises "
      "InvalidStorageUri.");
  m.def("oci_endpoint", &oci::resolve_endpoint, py::arg("endpoint") = "", py::arg("region") = "",
        "The Object Storage base URL: `endpoint`, else OCI_OBJECT_STORAGE_ENDPOINT, else "
        "https://objectstorage.{region}.oraclecloud.com. Raises CredentialsError when none is known.");
  m.def("oci_object_url", &oci::object_url, py::arg("endpoint"), py::arg("namespace"), py::arg("bucket"),
        py::arg("object_name"), "GET/HEAD URL of one object (the name percent-encoded as one path parameter).");

  m.def(
      "oci_head_object",
      [](const std::string& endpoint, std::shared_ptr<RequestSigner> signer, const std::string& ns,
         const std::string& bucket, const std::string& name, std::optional<DownloadOptions> http,
         CancelToken* cancel, DownloadProgress* progress) {
        auto options = client_options(endpoint, std::move(signer), http, oci::kMaxPageSize, 60, 4, 60, 1);
        oci::ObjectHead h;
        {
          py::gil_scoped_release release;
          h = oci::head_object(options, ns, bucket, name, cancel, progress);
        }
        py::dict d;
        d["size"] = h.size == kUnknownSize ? py::object(py::none()) : py::cast(h.size);
        d["etag"] = h.etag;
        d["content_md5"] = h.content_md5;
        d["multipart_md5"] = h.multipart_md5;
        d["meta_md5"] = h.meta_md5;
        d["archival_state"] = h.archival_state;
        return d;
      },
      py::arg("endpoint"), py::arg("signer"), py::arg("namespace"), py::arg("bucket"), py::arg("object_name"),
      py::kw_only(), py::arg("options") = py::none(), py::arg("cancel") = nullptr, py::arg("progress") = nullptr,
      "HEAD one object -> {size, etag, content_md5, multipart_md5, meta_md5, archival_state}; raises the mapped "
      "error (HttpStatusError 404 when it is gone, CredentialsError on 401).");

  m.def(
      "oci_build_plan",
      [](const std::string& uri, const std::string& endpoint, std::shared_ptr<RequestSigner> signer,
         std::vector<std::string> include, std::vector<std::string> exclude, std::optional<DownloadOptions> http,
         int page_size, double timeout, int max_attempts, double max_retry_seconds, int head_concurrency,
         CancelToken* cancel, DownloadProgress* progress) {
        auto options = client_options(endpoint, std::move(signer), http, page_size, timeout, max_attempts,
                                      max_retry_seconds, head_concurrency);
        oci::Location location = oci::parse_uri(uri);
        oci::ObjectFilter filter{std::move(include), std::move(exclude)};
        oci::Plan plan;
        {
          py::gil_scoped_release release;
          plan = oci::build_plan(options, location, filter, cancel, progress);
        }
        py::list files;
        for (const auto& f : plan.plan.files) files.append(plan_entry_dict(f));
        py::list objects;
        for (const auto& o : plan.objects) objects.append(summary_dict(o));
        py::dict out;
        out["namespace"] = plan.namespace_name;
        out["bucket"] = location.bucket;
        out["prefix"] = location.prefix;
        out["endpoint"] = plan.endpoint;
        out["files"] = files;
        out["objects"] = objects;
        out["excluded"] = pairs(plan.excluded);
        out["unverifiable"] = pairs(plan.unverifiable);
        return out;
      },
      py::arg("uri"), py::kw_only(), py::arg("endpoint"), py::arg("signer"),
      py::arg("include") = std::vector<std::string>{}, py::arg("exclude") = std::vector<std::string>{},
      py::arg("options") = py::none(), py::arg("page_size") = oci::kMaxPageSize, py::arg("timeout") = 60.0,
      py::arg("max_attempts") = 6, py::arg("max_retry_seconds") = 300.0, py::arg("head_concurrency") = 8,
      py::arg("cancel") = nullptr, py::arg("progress") = nullptr,
      "Lists the objects under the URI's prefix (a directory), selects and maps them to paths, HEADs multipart "
      "objects and returns {namespace, bucket, prefix, endpoint, files: [plan entries], objects: [listing entry "
      "per file], excluded: [(name, reason)], unverifiable: [(path, reason)]}. Retries and 429s of the API calls "
      "are added to `progress` (a DownloadProgress) when given.");
}

}  // namespace modelagent::bindings
