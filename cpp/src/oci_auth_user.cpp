// User principal: an API key (or a CLI session token) described by a profile of the OCI config file.

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "modelagent/errors.hpp"
#include "modelagent/oci_auth.hpp"

namespace modelagent::oci {
namespace {

bool env_true(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return false;
  std::string s(v);
  return s == "1" || s == "true" || s == "True" || s == "TRUE" || s == "yes";
}

class UserPrincipal : public Principal {
 public:
  explicit UserPrincipal(const AuthSettings& settings) {
    ConfigProfile profile = load_config_profile(settings.config_file, settings.profile);
    const std::string where = "OCI config file " + profile.file + ", profile [" + profile.profile + "]";
    tenancy_ = profile.require("tenancy");
    region_ = settings.region.empty() ? profile.require("region") : settings.region;
    std::string key_file = expand_home(profile.require("key_file"));
    PrivateKey key;
    try {
      key = PrivateKey::from_file(key_file, profile.get("pass_phrase"));
    } catch (const CredentialsError& e) {
      throw CredentialsError(where + ": key_file: " + e.what());
    }

    std::string token_file = profile.get("security_token_file");
    bool session = !token_file.empty() && (env_true("USE_SESSION_TOKEN") || profile.get("user").empty());
    std::string key_id;
    if (session) {
      token_file = expand_home(token_file);
      std::ifstream in(token_file);
      if (!in) throw CredentialsError(where + ": cannot read security_token_file " + token_file);
      std::ostringstream text;
      text << in.rdbuf();
      std::string token = text.str();
      while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
      if (token.empty()) throw CredentialsError(where + ": security_token_file " + token_file + " is empty");
      key_id = "ST$" + token;
      description_ = "OCI session token (" + where + ")";
    } else {
      const std::string& user = profile.require("user");
      const std::string& fingerprint = profile.require("fingerprint");
      if (fingerprint != key.fingerprint()) {
        throw CredentialsError(where + ": fingerprint " + fingerprint + " does not match key_file " + key_file +
                               " (its fingerprint is " + key.fingerprint() + ")");
      }
      key_id = tenancy_ + "/" + user + "/" + fingerprint;
      description_ = "OCI user principal (" + where + ")";
    }
    signer_ = std::make_unique<KeySigner>(key_id, key, SignOptions{}, description_);
  }

  void sign(const std::string& method, const std::string& url, const std::string& body,
            HeaderList& headers) const override {
    signer_->sign(method, url, body, headers);
  }
  std::string describe() const override { return description_; }
  std::string auth() const override { return "UserPrincipal"; }
  std::string region() const override { return region_; }
  std::string tenancy() const override { return tenancy_; }

 private:
  std::string tenancy_;
  std::string region_;
  std::string description_;
  std::unique_ptr<KeySigner> signer_;
};

}  // namespace

std::shared_ptr<Principal> make_user_principal(const AuthSettings& settings) {
  return std::make_shared<UserPrincipal>(settings);
}

}  // namespace modelagent::oci
