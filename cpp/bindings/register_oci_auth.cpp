// Python surface of OCI authentication: principals as RequestSigners, and a one-shot signing function
// for tests that compare our signatures with the official SDK's.

#include <pybind11/stl.h>

#include "bindings.hpp"
#include "modelagent/oci_auth.hpp"
#include "modelagent/oci_signer.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_oci_auth(py::module_& m) {
  using oci::Principal;
  py::class_<Principal, RequestSigner, std::shared_ptr<Principal>>(
      m, "OciPrincipal",
      "Signs OCI requests (signature version 1, rsa-sha256) as one principal; built by oci_principal().")
      .def_property_readonly("auth", &Principal::auth)
      .def_property_readonly("region", &Principal::region)
      .def_property_readonly("tenancy", &Principal::tenancy)
      .def("refresh", &Principal::refresh, py::call_guard<py::gil_scoped_release>(),
           "Obtains a new session token now (after a 401); no-op for API keys.");

  m.def(
      "oci_principal",
      [](const std::string& auth, const std::string& region, const std::string& config_file,
         const std::string& profile, const std::string& metadata_endpoint, const std::string& federation_endpoint,
         const std::string& oke_endpoint, const std::string& oke_token_path, const std::string& oke_ca_path,
         bool verify_tls, const std::string& ca_bundle) {
        oci::AuthSettings settings;
        settings.auth = auth;
        settings.region = region;
        settings.config_file = config_file;
        settings.profile = profile;
        settings.metadata_endpoint = metadata_endpoint;
        settings.federation_endpoint = federation_endpoint;
        settings.oke_endpoint = oke_endpoint;
        settings.oke_token_path = oke_token_path;
        settings.oke_ca_path = oke_ca_path;
        settings.verify_tls = verify_tls;
        settings.ca_bundle = ca_bundle;
        py::gil_scoped_release release;
        return oci::make_principal(settings);
      },
      py::arg("auth") = "InstancePrincipal", py::kw_only(), py::arg("region") = "", py::arg("config_file") = "",
      py::arg("profile") = "", py::arg("metadata_endpoint") = "", py::arg("federation_endpoint") = "",
      py::arg("oke_endpoint") = "", py::arg("oke_token_path") = "", py::arg("oke_ca_path") = "",
      py::arg("verify_tls") = true, py::arg("ca_bundle") = "",
      "Creates the OCI principal named by `auth` (parameters.auth); raises CredentialsError when its "
      "credentials cannot be found or obtained.");

  m.def(
      "oci_sign_request",
      [](const std::string& method, const std::string& url, HeaderList headers, const py::bytes& body,
         const std::string& key_id, const std::string& private_key_pem, const std::string& date,
         const std::string& passphrase, bool body_headers, bool host) {
        std::string data = body;
        py::gil_scoped_release release;
        oci::SignOptions options;
        options.date = date;
        options.body_headers = body_headers;
        options.host = host;
        oci::PrivateKey key = oci::PrivateKey::from_pem(private_key_pem, passphrase, "private_key_pem");
        oci::sign_request(method, url, data, headers, key_id, key, options);
        return headers;
      },
      py::arg("method"), py::arg("url"), py::arg("headers"), py::arg("body"), py::arg("key_id"),
      py::arg("private_key_pem"), py::arg("date"), py::arg("passphrase") = "", py::kw_only(),
      py::arg("body_headers") = true, py::arg("host") = true,
      "Signs one request with an explicit key, keyId and date (empty = now); returns the headers with "
      "date, host, body headers and authorization added.");
}

}  // namespace modelagent::bindings
