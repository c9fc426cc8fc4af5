// Instance principal: identity certificates from the instance metadata service (IMDS), exchanged at the
// x509 federation endpoint for a session token bound to an ephemeral key.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "modelagent/errors.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/oci_auth.hpp"

namespace modelagent::oci {
namespace {


std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::string snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;

X509Ptr parse_certificate(const std::string& pem, const std::string& source) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) throw CredentialsError(source + " is not a PEM certificate");
  return cert;
}

std::string tenancy_from_certificate(X509* cert, const std::string& source) {
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n < 0) continue;
    std::string value(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    for (const std::string prefix : {"opc-tenant:", "opc-identity:"}) {
      if (value.rfind(prefix, 0) == 0) return value.substr(prefix.size());
    }
  }
  throw CredentialsError(source + ": the certificate subject names no tenancy (opc-tenant:)");
}

std::string sha256_fingerprint(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), digest, &n);
  return colon_hex(std::string(reinterpret_cast<char*>(digest), n), true);
}

class InstancePrincipal : public SessionTokenPrincipal {
 public:
  explicit InstancePrincipal(const AuthSettings& settings) : settings_(settings) {
    region_ = settings.region.empty() ? metadata_region(settings) : settings.region;
    std::string base = settings.federation_endpoint.empty() ? env_value("OCI_FEDERATION_ENDPOINT")
                                                            : settings.federation_endpoint;
    if (base.empty()) base = "https://auth." + region_ + ".oraclecloud.com";
    federation_url_ = strip_slash(base);
    if (federation_url_.size() < 8 || federation_url_.compare(federation_url_.size() - 8, 8, "/v1/x509") != 0) {
      federation_url_ += "/v1/x509";
    }
    std::string cert_url = metadata_endpoint(settings) + "/identity/cert.pem";
    tenancy_ = tenancy_from_certificate(parse_certificate(metadata_get(settings, "identity/cert.pem"), cert_url).get(),
                                        cert_url);
    start();
  }

  std::string describe() const override { return "OCI instance principal (federation " + federation_url_ + ")"; }
  std::string auth() const override { return "InstancePrincipal"; }
  std::string region() const override { return region_; }
  std::string tenancy() const override { return tenancy_; }

 protected:
  Session fetch_session() const override {
    const std::string base = metadata_endpoint(settings_);
    std::string cert_pem = metadata_get(settings_, "identity/cert.pem");
    std::string key_pem = metadata_get(settings_, "identity/key.pem");
    std::string intermediate_pem = metadata_get(settings_, "identity/intermediate.pem");
    X509Ptr leaf = parse_certificate(cert_pem, base + "/identity/cert.pem");
    parse_certificate(intermediate_pem, base + "/identity/intermediate.pem");
    std::string tenancy = tenancy_from_certificate(leaf.get(), base + "/identity/cert.pem");
    if (tenancy != tenancy_) {
      throw CredentialsError(base + "/identity/cert.pem: the tenancy changed from " + tenancy_ + " to " + tenancy);
    }
    PrivateKey leaf_key = PrivateKey::from_pem(key_pem, "", base + "/identity/key.pem");

    Session session;
    session.key = PrivateKey::generate(2048);
    nlohmann::json payload = {
        {"certificate", pem_body(cert_pem)},
        {"publicKey", pem_body(session.key.public_key_pem())},
        {"intermediateCertificates", nlohmann::json::array({pem_body(intermediate_pem)})},
        {"fingerprintAlgorithm", "SHA256"},
        {"purpose", "DEFAULT"},
    };
    HttpRequest request;
    request.method = "POST";
    request.url = federation_url_;
    request.body = payload.dump();
    request.headers = {{"content-type", "application/json"}, {"accept", "application/json"}};
    SignOptions options;
    options.host = false;
    request.signer = std::make_shared<KeySigner>(tenancy_ + "/fed-x509-sha256/" + sha256_fingerprint(leaf.get()),
                                                 leaf_key, options, "OCI instance certificate");
    HttpResponse response;
    try {
      response = http_request(request, credential_retry_policy(), credential_http_options(settings_));
    } catch (const CredentialsError&) {
      throw;
    } catch (const DownloadError& e) {
      throw CredentialsError(std::string("OCI federation endpoint unreachable: ") + e.what());
    }
    if (response.status != 200) {
      throw CredentialsError("OCI federation endpoint " + federation_url_ + " answered " +
                             std::to_string(response.status) + ": " + snippet(response.body));
    }
    try {
      session.token = nlohmann::json::parse(response.body).at("token").get<std::string>();
    } catch (const std::exception&) {
      throw CredentialsError("OCI federation endpoint " + federation_url_ + " answered without a token: " +
                             snippet(response.body));
    }
    return session;
  }

 private:
  AuthSettings settings_;
  std::string region_;
  std::string tenancy_;
  std::string federation_url_;
};

}  // namespace

std::string pem_body(const std::string& pem) {
  std::string out;
  size_t pos = 0;
  while (pos < pem.size()) {
    size_t end = pem.find('\n', pos);
    std::string line = pem.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? pem.size() : end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("-----", 0) == 0) continue;
    out += line;
  }
  return out;
}

std::string metadata_endpoint(const AuthSettings& settings) {
  std::string base = settings.metadata_endpoint.empty() ? env_value("OCI_METADATA_BASE_URL") : settings.metadata_endpoint;
  return strip_slash(base.empty() ? kDefaultMetadataEndpoint : base);
}

std::string metadata_get(const AuthSettings& settings, const std::string& path) {
  HttpRequest request;
  request.url = metadata_endpoint(settings) + "/" + path;
  request.headers = {{"Authorization", "Bearer Oracle"}};
  request.timeout_seconds = 10;
  HttpResponse response;
  try {
    response = http_request(request, credential_retry_policy(), credential_http_options(settings));
  } catch (const DownloadError& e) {
    throw CredentialsError(std::string("OCI instance metadata service unreachable: ") + e.what());
  }
  if (response.status != 200) {
    throw CredentialsError("OCI instance metadata " + request.url + " answered " + std::to_string(response.status) +
                           ": " + snippet(response.body));
  }
  return response.body;
}

std::string metadata_region(const AuthSettings& settings) {
  std::string region = region_from_short_code(metadata_get(settings, "instance/region"));
  if (region.empty()) throw CredentialsError("OCI instance metadata " + metadata_endpoint(settings) +
                                             "/instance/region answered an empty region");
  return region;
}

RetryPolicy credential_retry_policy() {
  RetryPolicy policy;
  policy.max_attempts = 3;
  policy.base_seconds = 0.25;
  policy.cap_seconds = 1;
  policy.max_total_seconds = 5;
  return policy;
}

DownloadOptions credential_http_options(const AuthSettings& settings) {
  DownloadOptions options;
  options.verify_tls = settings.verify_tls;
  options.ca_bundle = settings.ca_bundle;
  options.connect_timeout_seconds = 5;
  return options;
}

std::shared_ptr<Principal> make_instance_principal(const AuthSettings& settings) {
  return std::make_shared<InstancePrincipal>(settings);
}

}  // namespace modelagent::oci
