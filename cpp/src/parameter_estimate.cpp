// Parameter-count estimation from a parsed config.json.
//
// The rule, for every family: count the tensors the model's checkpoint stores, as built by the modeling
// code of that family (Hugging Face transformers, or the repository's own trust_remote_code files).
// Consequences worth stating once:
//  - tied input/output embeddings count once;
//  - bare backbones (`LlamaModel`, `MistralModel`, `BertModel`, ...) have no LM head;
//  - multi-token-prediction modules (`num_nextn_predict_layers`, DeepSeek-V3) count, including the copies of
//    the embedding and output head the checkpoint stores inside each MTP layer;
//  - vision towers named by reference to another repository (original-LLaVA `mm_vision_tower`) do not count,
//    since the checkpoint does not contain them; towers described or embedded in the config do.
// See docs/parameter-counts.md for the per-family formulas and the published counts they are checked against.

#include "modelagent/ascii_text.hpp"
#include "modelagent/parameter_estimate.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <string_view>

#include "parameter_estimate_detail.hpp"

namespace modelagent {

namespace param_estimate {

// ---- Count ----------------------------------------------------------------------------------------------

Count operator+(Count a, Count b) {
  uint64_t r = 0;
  if (a.saturated() || b.saturated() || __builtin_add_overflow(a.value(), b.value(), &r)) return Count::max();
  return Count(r);
}

Count operator*(Count a, Count b) {
  uint64_t r = 0;
  if (a.saturated() || b.saturated() || __builtin_mul_overflow(a.value(), b.value(), &r)) return Count::max();
  return Count(r);
}

// ---- Fields ---------------------------------------------------------------------------------------------

namespace {
// Largest integer a JSON float can carry exactly; larger floats are treated as malformed sizes.
constexpr double kMaxExactFloat = 9007199254740992.0;  // 2^53
}  // namespace

const nlohmann::json* Fields::find(std::string_view key) const {
  if (obj_ == nullptr || !obj_->is_object()) return nullptr;
  auto it = obj_->find(key);
  if (it == obj_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool Fields::has(std::string_view key) const { return find(key) != nullptr; }

std::optional<uint64_t> Fields::num(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer()) {
    const int64_t i = v->get<int64_t>();
    if (i >= 0) return static_cast<uint64_t>(i);
  } else if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d >= 0 && d <= kMaxExactFloat && std::floor(d) == d) return static_cast<uint64_t>(d);
  }
  mark_bad();
  return std::nullopt;
}

std::optional<uint64_t> Fields::num(std::initializer_list<std::string_view> keys) const {
  for (std::string_view k : keys) {
    if (auto v = num(k)) return v;
    if (has(k)) return std::nullopt;  // present but malformed: do not fall through to an alias
  }
  return std::nullopt;
}

std::optional<double> Fields::real(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d >= 0) return d;
  }
  mark_bad();
  return std::nullopt;
}

std::optional<bool> Fields::flag(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_boolean()) return v->get<bool>();
  if (v->is_number_integer() || v->is_number_unsigned()) {
    const auto i = v->get<int64_t>();
    if (i == 0 || i == 1) return i == 1;
  }
  mark_bad();
  return std::nullopt;
}

std::string Fields::text(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return {};
  if (v->is_string()) return v->get<std::string>();
  mark_bad();
  return {};
}

Fields Fields::sub(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v != nullptr && !v->is_object()) {
    mark_bad();
    return Fields(nullptr, bad_);
  }
  return Fields(v, bad_);
}

const nlohmann::json* Fields::array(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return nullptr;
  if (v->is_array()) return v;
  mark_bad();
  return nullptr;
}

std::string Fields::first_architecture() const {
  const nlohmann::json* a = array("architectures");
  if (a == nullptr || a->empty()) return {};
  if (!(*a)[0].is_string()) return {};
  return (*a)[0].get<std::string>();
}

bool one_of(std::string_view s, std::initializer_list<std::string_view> set) {
  for (std::string_view x : set)
    if (s == x) return true;
  return false;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// ---- Shared building blocks ----------------------------------------------------------------------------

Count linear(uint64_t in, uint64_t out, bool bias) { return Count(in) * out + (bias ? Count(out) : Count(0)); }

Count layer_norm(uint64_t dim, bool bias) { return Count(dim) * (bias ? 2 : 1); }

Count mlp(uint64_t hidden, uint64_t inter, bool gated, bool bias) {
  Count c = linear(hidden, inter, bias) + linear(inter, hidden, bias);
  if (gated) c = c + linear(hidden, inter, bias);
  return c;
}

uint64_t multiples_in_range(uint64_t lo, uint64_t hi, uint64_t step) {
  if (step == 0 || hi <= lo) return 0;
  const auto ceil_div = [step](uint64_t x) { return x / step + (x % step != 0 ? 1 : 0); };
  return ceil_div(hi) - ceil_div(lo);
}

std::optional<uint64_t> label_count(const Fields& f) {
  if (const nlohmann::json* labels = f.find("id2label"); labels != nullptr && labels->is_object() && !labels->empty())
    return labels->size();
  if (auto n = f.num("num_labels")) return *n;
  return std::nullopt;
}

HeadKind head_kind(std::string_view arch) {
  if (arch.empty()) return HeadKind::kLm;
  if (contains(arch, "ForSequenceClassification")) return HeadKind::kScore;
  if (contains(arch, "ForTokenClassification")) return HeadKind::kScore;
  if (ends_with(arch, "ForRewardModel")) return HeadKind::kValue;
  if (ends_with(arch, "Model") && !contains(arch, "For")) return HeadKind::kNone;
  return HeadKind::kLm;
}

}  // namespace param_estimate

std::optional<uint64_t> estimate_parameters(const nlohmann::json& config) {
  try {
    if (!config.is_object()) return std::nullopt;
    bool bad = false;
    param_estimate::Fields f(&config, &bad);
    const std::optional<param_estimate::Count> total = param_estimate::estimate_any(f);
    if (bad || !total || total->saturated() || total->value() == 0 || total->value() == UINT64_MAX)
      return std::nullopt;
    return total->value();
  } catch (const std::exception&) {
    // nlohmann::json accessors only throw on type mismatches the readers above rule out; this guard keeps the
    // promise of never throwing should one slip through.
    return std::nullopt;
  }
}

}  // namespace modelagent
