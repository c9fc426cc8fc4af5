// Principal selection by parameters.auth, and the region short-code table IMDS answers may need.

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "modelagent/errors.hpp"
#include "modelagent/oci_auth.hpp"

namespace modelagent::oci {

std::string region_from_short_code(const std::string& code) {
  static const std::unordered_map<std::string, std::string> table = {
      {"yny", "ap-chuncheon-1"},  {"hyd", "ap-hyderabad-1"},   {"mel", "ap-melbourne-1"},
      {"bom", "ap-mumbai-1"},     {"kix", "ap-osaka-1"},       {"icn", "ap-seoul-1"},
      {"syd", "ap-sydney-1"},     {"nrt", "ap-tokyo-1"},       {"sin", "ap-singapore-1"},
      {"xsp", "ap-singapore-2"},  {"yul", "ca-montreal-1"},    {"yyz", "ca-toronto-1"},
      {"ams", "eu-amsterdam-1"},  {"fra", "eu-frankfurt-1"},   {"zrh", "eu-zurich-1"},
      {"lin", "eu-milan-1"},      {"cdg", "eu-paris-1"},       {"mrs", "eu-marseille-1"},
      {"arn", "eu-stockholm-1"},  {"mad", "eu-madrid-1"},      {"jed", "me-jeddah-1"},
      {"dxb", "me-dubai-1"},      {"auh", "me-abudhabi-1"},    {"ruh", "me-riyadh-1"},
      {"mtz", "il-jerusalem-1"},  {"jnb", "af-johannesburg-1"}, {"gru", "sa-saopaulo-1"},
      {"scl", "sa-santiago-1"},   {"vcp", "sa-vinhedo-1"},     {"bog", "sa-bogota-1"},
      {"vap", "sa-valparaiso-1"}, {"qro", "mx-queretaro-1"},   {"mty", "mx-monterrey-1"},
      {"lhr", "uk-london-1"},     {"cwl", "uk-cardiff-1"},     {"iad", "us-ashburn-1"},
      {"phx", "us-phoenix-1"},    {"sjc", "us-sanjose-1"},     {"ord", "us-chicago-1"},
  };
  std::string s = code;
  s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }), s.end());
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  auto it = table.find(s);
  return it == table.end() ? s : it->second;
}

std::shared_ptr<Principal> make_principal(const AuthSettings& settings) {
  if (settings.auth == "InstancePrincipal") return make_instance_principal(settings);
  if (settings.auth == "UserPrincipal") return make_user_principal(settings);
  if (settings.auth == "ResourcePrincipal") return make_resource_principal(settings);
  if (settings.auth == "OkeWorkloadIdentity") return make_oke_workload_identity(settings);
  throw CredentialsError("parameters.auth '" + settings.auth +
                         "' is not an OCI principal; use one of InstancePrincipal, UserPrincipal, "
                         "ResourcePrincipal, OkeWorkloadIdentity");
}

}  // namespace modelagent::oci
