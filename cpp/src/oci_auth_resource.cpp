// Resource principal (version 2.2): session token and its private key handed over in environment
// variables, each either the value itself or the absolute path of a file holding it.

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "modelagent/errors.hpp"
#include "modelagent/oci_auth.hpp"

namespace modelagent::oci {
namespace {


std::string trim_end(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The variable's value, or the contents of the file it names when it is an absolute path.
std::string value_or_file(const char* name, bool required) {
  std::string value = env_value(name);
  if (value.empty()) {
    if (required) throw CredentialsError(std::string("resource principal: ") + name + " is not set");
    return "";
  }
  if (value[0] != '/') return value;
  std::ifstream in(value, std::ios::binary);
  if (!in) throw CredentialsError(std::string("resource principal: cannot read ") + value + " (from " + name + ")");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class ResourcePrincipal : public SessionTokenPrincipal {
 public:
  explicit ResourcePrincipal(const AuthSettings& settings) {
    std::string version = env_value("OCI_RESOURCE_PRINCIPAL_VERSION");
    if (version != "2.2") {
      throw CredentialsError("resource principal: OCI_RESOURCE_PRINCIPAL_VERSION is " +
                             (version.empty() ? std::string("not set") : "'" + version + "'") +
                             "; only version 2.2 (token and key in the environment) is supported");
    }
    region_ = settings.region.empty() ? region_from_short_code(env_value("OCI_RESOURCE_PRINCIPAL_REGION")) : settings.region;
    if (region_.empty()) {
      throw CredentialsError("resource principal: OCI_RESOURCE_PRINCIPAL_REGION is not set (or set parameters.region)");
    }
    tenancy_ = jwt_claim(start(), "res_tenant");
  }

  std::string describe() const override { return "OCI resource principal (OCI_RESOURCE_PRINCIPAL_RPST)"; }
  std::string auth() const override { return "ResourcePrincipal"; }
  std::string region() const override { return region_; }
  std::string tenancy() const override { return tenancy_; }

 protected:
  Session fetch_session() const override {
    Session session;
    session.token = trim_end(value_or_file("OCI_RESOURCE_PRINCIPAL_RPST", true));
    std::string passphrase = trim_end(value_or_file("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE", false));
    std::string pem = value_or_file("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", true);
    std::string source = env_value("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM");
    session.key = PrivateKey::from_pem(pem, passphrase,
                                       source[0] == '/' ? source : std::string("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM"));
    return session;
  }

 private:
  std::string region_;
  std::string tenancy_;
};

}  // namespace

std::shared_ptr<Principal> make_resource_principal(const AuthSettings& settings) {
  return std::make_shared<ResourcePrincipal>(settings);
}

}  // namespace modelagent::oci
