// AWS credentials: Secret data, environment, web identity (STS AssumeRoleWithWebIdentity), shared
// credentials and config files, in that order.

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "modelagent/ascii_text.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/s3.hpp"

namespace modelagent::s3 {

namespace {

constexpr auto kRefreshMargin = std::chrono::minutes(5);
// Keys closer than this to their expiry are not used any more, even when a refresh fails.
constexpr auto kMinimumValidity = std::chrono::seconds(30);

std::optional<std::string> non_empty(const EnvLookup& env, const std::string& name) {
  auto v = env(name);
  if (v && !trim_space(*v).empty()) return trim_space(*v);
  return std::nullopt;
}

// Reads a whole file; nullopt when it does not exist, CredentialsError when it exists but cannot be read.
std::optional<std::string> read_file(const std::string& path, const std::string& role) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CredentialsError("cannot read the " + role + " " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw CredentialsError("cannot read the " + role + " " + path);
  return ss.str();
}

std::string home_file(const EnvLookup& env, const char* relative) {
  auto home = non_empty(env, "HOME");
  return home ? *home + "/" + relative : std::string();
}

const std::string* secret_value(const std::map<std::string, std::string>& secret, const std::string& lower_name) {
  for (const auto& name : {lower_name, [&] {
                             std::string u = lower_name;
                             std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return std::toupper(c); });
                             return u;
                           }()}) {
    auto it = secret.find(name);
    if (it != secret.end() && !trim_space(it->second).empty()) return &it->second;
  }
  return nullptr;
}

std::shared_ptr<const CredentialsProvider> from_pair(const std::string& id, const std::string& secret,
                                                     const std::string& token, const std::string& description) {
  Credentials c;
  c.access_key_id = trim_space(id);
  c.secret_access_key = trim_space(secret);
  c.session_token = trim_space(token);
  return std::make_shared<StaticCredentialsProvider>(std::move(c), description);
}

// Section of `profile` in a credentials file ("name") or a config file ("profile name", "default").
const std::map<std::string, std::string>* profile_section(const IniFile& ini, const std::string& profile,
                                                          bool config_file) {
  if (config_file && profile != "default") {
    auto it = ini.find("profile " + profile);
    if (it != ini.end()) return &it->second;
  }
  auto it = ini.find(profile);
  return it == ini.end() ? nullptr : &it->second;
}

std::string xml_text(const XmlElement& parent, const char* name, const std::string& url) {
  const XmlElement* e = parent.child(name);
  if (!e || trim_space(e->text).empty()) throw CredentialsError(url + ": STS answer without <" + std::string(name) + ">");
  return trim_space(e->text);
}

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

StaticCredentialsProvider::StaticCredentialsProvider(Credentials credentials, std::string description)
    : credentials_(std::move(credentials)), description_(std::move(description)) {}

IniFile parse_ini(std::string_view text, const std::string& file) {
  IniFile ini;
  std::map<std::string, std::string>* section = nullptr;
  std::string last_key;
  size_t line_no = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view raw = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    start = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    std::string line = trim_space(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    bool indented = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    auto bad = [&](const std::string& why) {
      throw CredentialsError(file + ":" + std::to_string(line_no) + ": " + why);
    };
    if (line[0] == '[') {
      if (line.back() != ']') bad("section header without ']'");
      std::string name = trim_space(line.substr(1, line.size() - 2));
      if (name.empty()) bad("empty section name");
      // "[profile  x]" and "[profile x]" name the same section.
      if (name.starts_with("profile") && name.size() > 7 && (name[7] == ' ' || name[7] == '\t')) {
        name = "profile " + trim_space(name.substr(7));
      }
      section = &ini[name];
      last_key.clear();
      continue;
    }
    size_t eq = line.find('=');
    if (indented && section && !last_key.empty() && (*section)[last_key].empty() && eq != std::string::npos) {
      // A nested value ("s3 =\n  addressing_style = path") is kept as "s3.addressing_style".
      (*section)[last_key + "." + ascii_lower(trim_space(line.substr(0, eq)))] = trim_space(line.substr(eq + 1));
      continue;
    }
    if (eq == std::string::npos) bad("expected 'key = value'");
    if (!section) bad("'key = value' before any [section]");
    std::string key = ascii_lower(trim_space(line.substr(0, eq)));
    if (key.empty()) bad("empty key");
    (*section)[key] = trim_space(line.substr(eq + 1));
    last_key = key;
  }
  return ini;
}

Credentials parse_assume_role_response(std::string_view xml, const std::string& url) {
  XmlElement root;
  try {
    root = parse_xml(xml, url);
  } catch (const DownloadError& e) {
    throw CredentialsError(e.what());
  }
  const XmlElement* result = root.child("AssumeRoleWithWebIdentityResult");
  const XmlElement* creds = result ? result->child("Credentials") : nullptr;
  if (!creds) throw CredentialsError(url + ": STS answer without <AssumeRoleWithWebIdentityResult><Credentials>");
  Credentials c;
  c.access_key_id = xml_text(*creds, "AccessKeyId", url);
  c.secret_access_key = xml_text(*creds, "SecretAccessKey", url);
  c.session_token = xml_text(*creds, "SessionToken", url);
  std::string expiration = xml_text(*creds, "Expiration", url);
  c.expiration = parse_iso8601(expiration);
  if (!c.expiration) throw CredentialsError(url + ": STS <Expiration> '" + expiration + "' is not an ISO 8601 time");
  return c;
}

WebIdentityCredentialsProvider::WebIdentityCredentialsProvider(Config config) : config_(std::move(config)) {
  if (config_.session_name.empty()) {
    config_.session_name = "modelagent-" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                              std::chrono::system_clock::now().time_since_epoch())
                                                              .count());
  }
  while (!config_.sts_endpoint.empty() && config_.sts_endpoint.back() == '/') config_.sts_endpoint.pop_back();
}

std::string WebIdentityCredentialsProvider::describe() const {
  return "web identity (AWS_WEB_IDENTITY_TOKEN_FILE " + config_.token_file + ", role " + config_.role_arn + ")";
}

Credentials WebIdentityCredentialsProvider::get() const {
  const auto now = std::chrono::system_clock::now();
  auto fresh_enough = [&](const std::optional<Credentials>& c) {
    return c && (!c->expiration || *c->expiration - kRefreshMargin > now);
  };
  auto still_valid = [&](const std::optional<Credentials>& c) {
    return c && (!c->expiration || *c->expiration > now + kMinimumValidity);
  };
  std::optional<Credentials> current;
  {
    std::lock_guard state(state_mutex_);
    current = cached_;
  }
  if (fresh_enough(current)) return *current;

  std::unique_lock fetching(fetch_mutex_, std::defer_lock);
  if (still_valid(current)) {
    if (!fetching.try_lock()) return *current;  // another thread is refreshing; these keys still work
  } else {
    fetching.lock();
  }
  {
    std::lock_guard state(state_mutex_);
    if (fresh_enough(cached_)) return *cached_;  // refreshed while this thread waited
    current = cached_;
  }
  try {
    Credentials fresh = fetch();
    std::lock_guard state(state_mutex_);
    cached_ = fresh;
    return fresh;
  } catch (const CredentialsError&) {
    // An early refresh that fails keeps the current keys while they are still valid.
    if (still_valid(current)) return *current;
    throw;
  }
}

bool WebIdentityCredentialsProvider::renew(const std::string& rejected_access_key_id) const {
  std::lock_guard fetching(fetch_mutex_);
  {
    std::lock_guard state(state_mutex_);
    if (cached_ && !rejected_access_key_id.empty() && cached_->access_key_id != rejected_access_key_id) return true;
  }
  Credentials fresh = fetch();
  std::lock_guard state(state_mutex_);
  cached_ = fresh;
  return true;
}

Credentials WebIdentityCredentialsProvider::fetch() const {
  auto token = read_file(config_.token_file, "web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE)");
  if (!token) throw CredentialsError("web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE) " + config_.token_file +
                                     " does not exist");
  std::string jwt = trim_space(*token);
  if (jwt.empty()) throw CredentialsError("web identity token file " + config_.token_file + " is empty");
  std::string base = config_.sts_endpoint + "/";
  // The STS query API, unsigned, with the parameters as a form body (as the AWS SDKs send it).
  HttpRequest request;
  request.method = "POST";
  request.url = base;
  request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
  request.headers.emplace_back("Accept", "application/xml");
  request.body = "Action=AssumeRoleWithWebIdentity&RoleArn=" + uri_encode(config_.role_arn, false) +
                 "&RoleSessionName=" + uri_encode(config_.session_name, false) + "&Version=2011-06-15" +
                 "&WebIdentityToken=" + uri_encode(jwt, false);
  HttpResponse response;
  try {
    response = http_request(request, config_.retry, config_.http);
  } catch (const CancelledError&) {
    throw;
  } catch (const DownloadError& e) {
    throw CredentialsError(std::string("STS AssumeRoleWithWebIdentity at ") + base + ": " + e.what());
  }
  if (response.status < 200 || response.status >= 300) {
    std::string detail = describe_error_body(response.body);
    throw CredentialsError("STS AssumeRoleWithWebIdentity at " + base + " for role " + config_.role_arn + ": HTTP " +
                           std::to_string(response.status) + (detail.empty() ? "" : " " + detail));
  }
  return parse_assume_role_response(response.body, base);
}

std::shared_ptr<const CredentialsProvider> resolve_credentials(const ChainInputs& in) {
  const EnvLookup& env = in.env;
  // 1. The model's Secret.
  {
    const std::string* id = secret_value(in.secret, "aws_access_key_id");
    const std::string* key = secret_value(in.secret, "aws_secret_access_key");
    const std::string* token = secret_value(in.secret, "aws_session_token");
    if (id || key || token) {
      if (!id) throw CredentialsError("the model's Secret has no aws_access_key_id (or AWS_ACCESS_KEY_ID)");
      if (!key) throw CredentialsError("the model's Secret has no aws_secret_access_key (or AWS_SECRET_ACCESS_KEY)");
      return from_pair(*id, *key, token ? *token : "", "the model's Secret");
    }
  }
  // 2. Environment.
  {
    auto id = non_empty(env, "AWS_ACCESS_KEY_ID");
    auto key = non_empty(env, "AWS_SECRET_ACCESS_KEY");
    if (id || key) {
      if (!id) throw CredentialsError("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
      if (!key) throw CredentialsError("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
      return from_pair(*id, *key, non_empty(env, "AWS_SESSION_TOKEN").value_or(""),
                       "environment (AWS_ACCESS_KEY_ID)");
    }
  }
  // 3. Web identity (EKS IRSA, any OIDC token projected into the pod).
  if (auto token_file = non_empty(env, "AWS_WEB_IDENTITY_TOKEN_FILE")) {
    auto role = non_empty(env, "AWS_ROLE_ARN");
    if (!role) throw CredentialsError("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
    WebIdentityCredentialsProvider::Config c;
    c.token_file = *token_file;
    c.role_arn = *role;
    c.session_name = non_empty(env, "AWS_ROLE_SESSION_NAME").value_or("");
    std::string region = in.region.empty() ? "us-east-1" : in.region;
    c.sts_endpoint = non_empty(env, "AWS_ENDPOINT_URL_STS")
                         .value_or(non_empty(env, "AWS_ENDPOINT_URL").value_or("https://sts." + region + ".amazonaws.com"));
    c.http = in.http;
    c.retry = in.retry;
    return std::make_shared<WebIdentityCredentialsProvider>(std::move(c));
  }
  // 4./5. Shared credentials file, then the config file, for the profile.
  bool profile_named = !in.profile.empty() || non_empty(env, "AWS_PROFILE").has_value();
  std::string profile = !in.profile.empty() ? in.profile : non_empty(env, "AWS_PROFILE").value_or("default");
  std::vector<std::string> tried = {"the model's Secret", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                                    "AWS_WEB_IDENTITY_TOKEN_FILE"};
  bool profile_seen = false;
  for (bool config_file : {false, true}) {
    const char* variable = config_file ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE";
    auto explicit_path = non_empty(env, variable);
    std::string path = explicit_path ? *explicit_path : home_file(env, config_file ? ".aws/config" : ".aws/credentials");
    if (path.empty()) continue;
    std::string role = config_file ? "AWS config file" : "AWS shared credentials file";
    auto text = read_file(path, role);
    if (!text) {
      if (explicit_path) throw CredentialsError(role + " " + path + " (" + variable + ") does not exist");
      tried.push_back(path + " (absent)");
      continue;
    }
    IniFile ini = parse_ini(*text, path);
    const auto* section = profile_section(ini, profile, config_file);
    if (!section) {
      tried.push_back(path + " (no profile " + profile + ")");
      continue;
    }
    profile_seen = true;
    auto id = section->find("aws_access_key_id");
    auto key = section->find("aws_secret_access_key");
    bool has_id = id != section->end() && !id->second.empty();
    bool has_key = key != section->end() && !key->second.empty();
    if (has_id != has_key) {
      throw CredentialsError(path + ": profile " + profile + " has " +
                             (has_id ? "aws_access_key_id but no aws_secret_access_key"
                                     : "aws_secret_access_key but no aws_access_key_id"));
    }
    if (has_id) {
      auto token = section->find("aws_session_token");
      return from_pair(id->second, key->second, token == section->end() ? "" : token->second,
                       path + " (profile " + profile + ")");
    }
    tried.push_back(path + " (profile " + profile + " has no keys)");
  }
  if (profile_named && !profile_seen) {
    throw CredentialsError("AWS profile '" + profile + "' is in neither the shared credentials file nor the config file");
  }
  std::string list;
  for (const auto& t : tried) list += (list.empty() ? "" : ", ") + t;
  throw CredentialsError("no AWS credentials found (tried " + list + ")");
}

}  // namespace modelagent::s3
