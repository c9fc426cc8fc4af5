// OME-compatible label keys, ConfigMap keys and label values; Kubernetes name validation.

#include "modelagent/naming.hpp"

#include <openssl/evp.h>

#include <stdexcept>
#include <string>

namespace modelagent {

namespace {

constexpr std::string_view kClusterType = "clusterbasemodel";
constexpr std::string_view kNamespacedType = "basemodel";
// OME gives a truncated namespace this many bytes and the model name the rest.
constexpr size_t kNamespaceShare = 8;

std::string sha256_hex_prefix(std::string_view s, size_t digits) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed in OpenSSL");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len && out.size() < digits; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xf];
  }
  out.resize(digits);
  return out;
}

void check_scope(ModelKind kind, std::string_view name, std::string_view ns) {
  if (name.empty()) throw std::invalid_argument("model name must not be empty");
  if (kind == ModelKind::BaseModel && ns.empty())
    throw std::invalid_argument("BaseModel '" + std::string(name) + "' needs a namespace");
  if (kind == ModelKind::ClusterBaseModel && !ns.empty())
    throw std::invalid_argument("ClusterBaseModel '" + std::string(name) +
                                "' is cluster-scoped; got namespace '" + std::string(ns) + "'");
}

// The part after the label domain (or the whole ConfigMap key) under OME's budget rules.
std::string model_suffix(ModelKind kind, std::string_view name, std::string_view ns, size_t budget) {
  check_scope(kind, name, ns);
  if (kind == ModelKind::ClusterBaseModel) {
    size_t name_budget = budget - kClusterType.size() - 1;
    return std::string(kClusterType) + "." + truncate_with_hash(name, name_budget);
  }
  // "<ns>." + "basemodel." + "<name>": the two dots and the type word are fixed cost.
  size_t available = budget - (kNamespacedType.size() + 1) - 1;
  std::string ns_part(ns), name_part(name);
  if (ns.size() + name.size() > available) {
    size_t ns_budget, name_budget;
    if (available < 2 * kNamespaceShare) {
      ns_budget = available / 2;
      name_budget = available - ns_budget;
    } else {
      ns_budget = ns.size() <= kNamespaceShare ? ns.size() : kNamespaceShare;
      name_budget = available - ns_budget;
    }
    ns_part = truncate_with_hash(ns, ns_budget);
    name_part = truncate_with_hash(name, name_budget);
  }
  return ns_part + "." + std::string(kNamespacedType) + "." + name_part;
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], length checked by the caller.
bool matches_name_syntax(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string dns_subdomain_problem(std::string_view s) {
  if (s.empty()) return "is empty";
  if (s.size() > 253) return "is longer than 253 characters";
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    bool ok = !label.empty() && is_lower_alnum(label.front()) && is_lower_alnum(label.back());
    for (char c : label) ok = ok && (is_lower_alnum(c) || c == '-');
    if (!ok)
      return "must be lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with "
             "a letter or digit";
    if (dot == std::string_view::npos) return "";
    start = dot + 1;
  }
}

}  // namespace

ModelKind parse_model_kind(std::string_view kind) {
  if (kind == "BaseModel") return ModelKind::BaseModel;
  if (kind == "ClusterBaseModel") return ModelKind::ClusterBaseModel;
  throw std::invalid_argument("model kind must be 'BaseModel' or 'ClusterBaseModel', got " + quoted(kind));
}

std::string_view model_kind_name(ModelKind kind) {
  return kind == ModelKind::BaseModel ? "BaseModel" : "ClusterBaseModel";
}

std::string truncate_with_hash(std::string_view s, size_t max_len) {
  if (s.size() <= max_len) return std::string(s);
  std::string hash = sha256_hex_prefix(s, 8);
  if (max_len <= 9) return hash.substr(0, max_len);
  size_t keep = max_len - 9;
  return hash + "-" + std::string(s.substr(s.size() - keep));
}

std::string node_label_key(ModelKind kind, std::string_view name, std::string_view namespace_name) {
  return std::string(kModelLabelDomain) + "/" + model_suffix(kind, name, namespace_name, kLabelNameBudget);
}

std::string configmap_key(ModelKind kind, std::string_view name, std::string_view namespace_name) {
  return model_suffix(kind, name, namespace_name, kConfigMapKeyBudget);
}

std::optional<ModelKey> parse_configmap_key(std::string_view key) {
  std::string cluster_prefix = std::string(kClusterType) + ".";
  if (key.substr(0, cluster_prefix.size()) == cluster_prefix)
    return ModelKey{ModelKind::ClusterBaseModel, "", std::string(key.substr(cluster_prefix.size()))};
  std::string marker = "." + std::string(kNamespacedType) + ".";
  size_t at = key.find(marker);
  if (at == std::string_view::npos) return std::nullopt;
  return ModelKey{ModelKind::BaseModel, std::string(key.substr(0, at)), std::string(key.substr(at + marker.size()))};
}

std::optional<std::string> node_label_value(std::string_view status) {
  if (status == "Ready" || status == "Updating" || status == "Failed") return std::string(status);
  if (status == "Deleted") return std::nullopt;
  throw std::invalid_argument("model status must be Ready, Updating, Failed or Deleted, got " + quoted(status));
}

std::string label_key_problem(std::string_view key) {
  std::string_view name = key;
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (name.find('/') != std::string_view::npos) return "label key " + quoted(key) + " has more than one '/'";
    std::string problem = dns_subdomain_problem(prefix);
    if (!problem.empty()) return "prefix " + quoted(prefix) + " of label key " + quoted(key) + " " + problem;
  }
  if (name.empty()) return "label key " + quoted(key) + " has an empty name part";
  if (name.size() > 63) return "name part of label key " + quoted(key) + " is longer than 63 characters";
  if (!matches_name_syntax(name))
    return "name part of label key " + quoted(key) +
           " must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
  return "";
}

std::string label_value_problem(std::string_view value) {
  if (value.empty()) return "";
  if (value.size() > 63) return "label value " + quoted(value) + " is longer than 63 characters";
  if (!matches_name_syntax(value))
    return "label value " + quoted(value) +
           " must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
  return "";
}

std::string configmap_key_problem(std::string_view key) {
  if (key.empty()) return "ConfigMap key is empty";
  if (key.size() > 253) return "ConfigMap key " + quoted(key) + " is longer than 253 characters";
  for (char c : key)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
      return "ConfigMap key " + quoted(key) + " may only contain letters, digits, '-', '_' and '.'";
  if (key == ".") return "ConfigMap key must not be '.'";
  if (key.substr(0, 2) == "..") return "ConfigMap key " + quoted(key) + " must not start with '..'";
  return "";
}

}  // namespace modelagent
