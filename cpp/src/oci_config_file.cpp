// The OCI config file (INI with a [DEFAULT] section every profile inherits), read as the OCI CLI does.

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "modelagent/ascii_text.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/oci_auth.hpp"

namespace modelagent::oci {
namespace {

std::string where(const ConfigProfile& p) { return "OCI config file " + p.file + ", profile [" + p.profile + "]"; }

}  // namespace

std::string env_value(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string expand_home(const std::string& path) {
  if (path == "~" || path.rfind("~/", 0) == 0) {
    std::string home = env_value("HOME");
    if (!home.empty()) return home + path.substr(1);
  }
  return path;
}

const std::string& ConfigProfile::require(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end() || it->second.empty()) throw CredentialsError(where(*this) + ": missing '" + key + "'");
  return it->second;
}

std::string ConfigProfile::get(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? "" : it->second;
}

ConfigProfile load_config_profile(const std::string& path, const std::string& profile) {
  ConfigProfile out;
  std::string chosen = path;
  for (const char* name : {"OCI_CONFIG_FILE", "OCI_CONFIG_PATH"}) {
    if (chosen.empty()) chosen = env_value(name);
  }
  if (chosen.empty()) chosen = "~/.oci/config";
  out.file = expand_home(chosen);
  out.profile = profile;
  for (const char* name : {"OCI_CLI_PROFILE", "PROFILE"}) {
    if (out.profile.empty()) out.profile = env_value(name);
  }
  if (out.profile.empty()) out.profile = "DEFAULT";

  std::error_code ec;
  if (!std::filesystem::is_regular_file(out.file, ec)) {
    throw CredentialsError("OCI config file " + out.file + " does not exist (set parameters.config_file or " +
                           "OCI_CONFIG_FILE)");
  }
  std::ifstream in(out.file);
  if (!in) throw CredentialsError("cannot read OCI config file " + out.file);

  std::map<std::string, std::map<std::string, std::string>> sections;
  std::string section;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string text = trim_space(line);
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text.front() == '[') {
      if (text.back() != ']' || text.size() < 3) {
        throw CredentialsError("OCI config file " + out.file + " line " + std::to_string(number) +
                               ": malformed section header " + text);
      }
      section = trim_space(text.substr(1, text.size() - 2));
      sections[section];
      continue;
    }
    auto eq = text.find('=');
    if (eq == std::string::npos || trim_space(text.substr(0, eq)).empty()) {
      throw CredentialsError("OCI config file " + out.file + " line " + std::to_string(number) +
                             ": expected key=value");
    }
    if (section.empty()) {
      throw CredentialsError("OCI config file " + out.file + " line " + std::to_string(number) +
                             ": key outside of any [profile] section");
    }
    sections[section][trim_space(text.substr(0, eq))] = trim_space(text.substr(eq + 1));
  }

  auto found = sections.find(out.profile);
  if (found == sections.end()) {
    std::string names;
    for (const auto& [name, values] : sections) names += (names.empty() ? "" : ", ") + name;
    throw CredentialsError("OCI config file " + out.file + " has no profile [" + out.profile + "]" +
                           (names.empty() ? std::string(" (no profiles at all)") : " (profiles: " + names + ")"));
  }
  if (auto defaults = sections.find("DEFAULT"); defaults != sections.end()) out.values = defaults->second;
  for (const auto& [key, value] : found->second) out.values[key] = value;
  return out;
}

}  // namespace modelagent::oci
