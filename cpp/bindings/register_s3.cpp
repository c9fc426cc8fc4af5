// Python surface of the S3 source (cpp/include/modelagent/s3.hpp): the SigV4 signer and the planner.

#include <pybind11/stl.h>

#include <map>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/s3.hpp"
#include "modelagent/storage_uri.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

RetryPolicy retry_from(const DownloadOptions& options) {
  RetryPolicy r;
  r.max_attempts = std::max(1, options.max_attempts);
  r.base_seconds = options.retry_base_seconds;
  r.cap_seconds = options.retry_cap_seconds;
  return r;
}

}  // namespace

void register_s3(py::module_& m) {
  py::class_<s3::SigV4Signer, RequestSigner, std::shared_ptr<s3::SigV4Signer>>(
      m, "S3Signer",
      "AWS Signature Version 4 signer (AWS4-HMAC-SHA256) for S3 or another service; attach to plan entries as "
      "'signer'. Signs host, x-amz-* and (when present) range, content-type, content-md5.")
      .def(py::init([](std::string access_key_id, std::string secret_access_key, std::string session_token,
                       std::string region, std::string service, bool unsigned_payload) {
             s3::Credentials c;
             c.access_key_id = std::move(access_key_id);
             c.secret_access_key = std::move(secret_access_key);
             c.session_token = std::move(session_token);
             if (c.access_key_id.empty() || c.secret_access_key.empty()) {
               throw CredentialsError("S3Signer needs an access key id and a secret access key");
             }
             auto provider = std::make_shared<s3::StaticCredentialsProvider>(std::move(c), "explicit keys");
             return std::make_shared<s3::SigV4Signer>(provider, std::move(region), std::move(service),
                                                      unsigned_payload);
           }),
           py::arg("access_key_id"), py::arg("secret_access_key"), py::arg("session_token") = "",
           py::arg("region") = "us-east-1", py::arg("service") = "s3", py::arg("unsigned_payload") = true)
      .def_property_readonly("region", &s3::SigV4Signer::region)
      .def(
          "sign_at",
          [](const s3::SigV4Signer& self, const std::string& method, const std::string& url, const std::string& body,
             HeaderList headers, const std::string& amz_date) {
            auto when = s3::parse_iso8601(amz_date);
            if (!when) throw py::value_error("amz_date '" + amz_date + "' is not like 20130524T000000Z");
            s3::SigningResult r;
            {
              py::gil_scoped_release release;
              r = self.sign_at(method, url, body, headers, *when, self.credentials().get());
            }
            py::dict out;
            out["headers"] = headers;
            out["canonical_request"] = r.canonical_request;
            out["string_to_sign"] = r.string_to_sign;
            out["signature"] = r.signature;
            out["authorization"] = r.authorization;
            return out;
          },
          py::arg("method"), py::arg("url"), py::arg("body") = "", py::arg("headers") = HeaderList{},
          py::kw_only(), py::arg("amz_date"),
          "Signs as of the given time (x-amz-date form); returns {headers, canonical_request, string_to_sign, "
          "signature, authorization}.");

  m.def(
      "s3_plan",
      [](const std::string& uri, const std::map<std::string, std::string>& parameters,
         const std::map<std::string, std::string>& credentials, std::vector<std::string> include,
         std::vector<std::string> exclude, std::optional<DownloadOptions> options, CancelToken* cancel,
         DownloadProgress* progress) {
        auto parsed = parse_storage_uri(uri);
        auto* s3uri = std::get_if<S3StorageUri>(&parsed);
        if (!s3uri) throw InvalidStorageUri("'" + uri + "' is not an s3:// URI");
        auto param = [&](const char* name) {
          auto it = parameters.find(name);
          return it == parameters.end() ? std::string() : it->second;
        };
        s3::SourceParameters sp{param("region"), param("endpoint"), param("path_style"), param("profile")};
        DownloadOptions http = options.value_or(DownloadOptions{});
        s3::PlanOptions po;
        po.include = std::move(include);
        po.exclude = std::move(exclude);
        int max_keys = 1000;
        if (std::string mk = param("max_keys"); !mk.empty()) {
          try {
            size_t used = 0;
            max_keys = std::stoi(mk, &used);
            if (used != mk.size()) throw std::invalid_argument(mk);
          } catch (const std::exception&) {
            max_keys = 0;
          }
          if (max_keys < 1 || max_keys > 1000) {
            throw py::value_error("parameter max_keys '" + mk + "' must be a number from 1 to 1000");
          }
        }
        po.max_keys = max_keys;
        if (std::string v = param("verify_etag"); !v.empty()) {
          if (v == "true" || v == "1" || v == "yes") po.verify_etag = true;
          else if (v == "false" || v == "0" || v == "no") po.verify_etag = false;
          else throw py::value_error("parameter verify_etag '" + v + "' is not true or false");
        }
        s3::S3Plan plan;
        s3::ResolvedConfig config;
        std::string credentials_source;
        {
          py::gil_scoped_release release;
          config = s3::resolve_config(*s3uri, sp);
          s3::ChainInputs chain;
          chain.secret = credentials;
          chain.profile = sp.profile;
          chain.region = config.region;
          chain.http = http;
          chain.retry = retry_from(http);
          auto provider = s3::resolve_credentials(chain);
          credentials_source = provider->describe();
          auto signer = std::make_shared<s3::SigV4Signer>(provider, config.region);
          s3::Client client(config, signer, http, retry_from(http), cancel, progress);
          plan = s3::plan_download(client, po);
        }
        py::list files;
        for (const auto& f : plan.plan.files) files.append(plan_entry_dict(f));
        py::list objects;
        for (const auto& o : plan.objects) objects.append(py::make_tuple(o.key, o.size, o.etag));
        py::dict out;
        out["files"] = files;
        out["objects"] = objects;
        out["excluded"] = plan.excluded;
        out["unverifiable"] = plan.unverifiable;
        out["bucket"] = config.bucket;
        out["prefix"] = config.prefix;
        out["region"] = config.region;
        out["endpoint"] = config.endpoint;
        out["bucket_url"] = config.bucket_url();
        out["path_style"] = config.path_style;
        out["credentials"] = credentials_source;
        return out;
      },
      py::arg("uri"), py::arg("parameters") = std::map<std::string, std::string>{},
      py::arg("credentials") = std::map<std::string, std::string>{}, py::arg("include") = std::vector<std::string>{},
      py::arg("exclude") = std::vector<std::string>{}, py::arg("options") = py::none(),
      py::arg("cancel") = nullptr, py::arg("progress") = nullptr,
      "Lists s3://bucket[@region]/prefix (parameters: region, endpoint, path_style, profile, max_keys, verify_etag; "
      "credentials: "
      "the model's Secret data) and plans every object. Returns {files, objects: [(key, size, etag)], excluded, "
      "unverifiable, bucket, prefix, region, endpoint, bucket_url, path_style, credentials}. Retries and 429s of the "
      "listing and HEAD calls (not of the credential calls) are added to `progress` when given.");
}

}  // namespace modelagent::bindings
