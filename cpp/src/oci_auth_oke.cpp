// OKE workload identity: the pod's service-account token is exchanged at the cluster's proxymux for a
// resource-principal session token bound to an ephemeral key.

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "modelagent/errors.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/oci_auth.hpp"

namespace modelagent::oci {
namespace {


class OkeWorkloadIdentity : public SessionTokenPrincipal {
 public:
  explicit OkeWorkloadIdentity(const AuthSettings& settings) : settings_(settings) {
    endpoint_ = settings.oke_endpoint;
    if (endpoint_.empty()) {
      std::string host = env_value("KUBERNETES_SERVICE_HOST");
      if (host.empty()) {
        throw CredentialsError("OKE workload identity: KUBERNETES_SERVICE_HOST is not set (not in a pod?) and no "
                               "oke_endpoint was given");
      }
      if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
      endpoint_ = "https://" + host + ":12250/resourcePrincipalSessionTokens";
    }
    token_path_ = settings.oke_token_path.empty() ? kDefaultOkeTokenPath : settings.oke_token_path;
    ca_path_ = settings.oke_ca_path;
    if (ca_path_.empty()) ca_path_ = env_value("OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH");
    if (ca_path_.empty()) ca_path_ = kDefaultOkeCaPath;
    if (!std::ifstream(ca_path_)) {
      throw CredentialsError("OKE workload identity: cannot read the service-account CA " + ca_path_);
    }
    tenancy_ = jwt_claim(start(), "res_tenant");
    region_ = settings.region;
    if (region_.empty()) region_ = region_from_short_code(env_value("OCI_RESOURCE_PRINCIPAL_REGION"));
    if (region_.empty()) region_ = metadata_region(settings);
  }

  std::string describe() const override { return "OCI OKE workload identity (" + endpoint_ + ")"; }
  std::string auth() const override { return "OkeWorkloadIdentity"; }
  std::string region() const override { return region_; }
  std::string tenancy() const override { return tenancy_; }

 protected:
  Session fetch_session() const override {
    std::ifstream in(token_path_);
    if (!in) throw CredentialsError("OKE workload identity: cannot read the service-account token " + token_path_);
    std::ostringstream text;
    text << in.rdbuf();
    std::string sa_token = text.str();
    while (!sa_token.empty() && (sa_token.back() == '\n' || sa_token.back() == '\r')) sa_token.pop_back();
    if (sa_token.empty()) throw CredentialsError("OKE workload identity: service-account token " + token_path_ + " is empty");

    Session session;
    session.key = PrivateKey::generate(2048);
    HttpRequest request;
    request.method = "POST";
    request.url = endpoint_;
    request.body = nlohmann::json{{"podKey", pem_body(session.key.public_key_pem())}}.dump();
    request.headers = {{"Authorization", "Bearer " + sa_token}, {"Content-Type", "application/json"}};
    DownloadOptions options = credential_http_options(settings_);
    options.ca_bundle = ca_path_;
    HttpResponse response;
    try {
      response = http_request(request, credential_retry_policy(), options);
    } catch (const DownloadError& e) {
      throw CredentialsError(std::string("OKE workload identity: proxymux unreachable: ") + e.what());
    }
    if (response.status != 200) {
      throw CredentialsError("OKE workload identity: " + endpoint_ + " answered " + std::to_string(response.status) +
                             ": " + response.body.substr(0, 200));
    }
    std::string token;
    try {
      token = nlohmann::json::parse(base64_decode(response.body)).at("token").get<std::string>();
    } catch (const std::exception&) {
      throw CredentialsError("OKE workload identity: " + endpoint_ +
                             " answered something other than base64 of {\"token\": ...}");
    }
    session.token = token.rfind("ST$", 0) == 0 ? token.substr(3) : token;
    return session;
  }

 private:
  AuthSettings settings_;
  std::string endpoint_;
  std::string token_path_;
  std::string ca_path_;
  std::string region_;
  std::string tenancy_;
};

}  // namespace

std::shared_ptr<Principal> make_oke_workload_identity(const AuthSettings& settings) {
  return std::make_shared<OkeWorkloadIdentity>(settings);
}

}  // namespace modelagent::oci
