// Locating a model's safetensors files and counting its logical parameters.
//
// Tensor roles are decided from the names around a tensor, never from its name alone: `scales` is a
// GPTQ/AWQ auxiliary only beside a `qweight`, `weight_scale` only beside a quantized `weight`, and
// so on, so a real parameter that merely shares a suffix is still counted.

#include "modelagent/weights.hpp"

#include <algorithm>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>
#include <unordered_map>

#include "modelagent/errors.hpp"
#include "modelagent/safetensors.hpp"

namespace modelagent {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxIndexBytes = 100ull * 1024 * 1024;

// A tensor name from a file, safe and short enough for an error message.
std::string printable(std::string_view s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 200; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  return out + (s.size() > 200 ? "...'" : "'");
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string read_index(const fs::path& index) {
  std::error_code ec;
  auto size = fs::file_size(index, ec);
  if (ec) throw SafetensorsError(index.string() + ": cannot read: " + ec.message());
  if (size > kMaxIndexBytes) {
    throw SafetensorsError(index.string() + ": " + std::to_string(size) + " bytes, over the " +
                           std::to_string(kMaxIndexBytes) + "-byte limit for an index");
  }
  std::ifstream in(index, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw SafetensorsError(index.string() + ": cannot read");
  return text.str();
}

// Shard names listed by one index's weight_map, resolved against dir.
void add_index_shards(const fs::path& dir, const fs::path& index, std::set<fs::path>& shards) {
  const std::string label = index.string();
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_index(index));
  } catch (const nlohmann::json::parse_error& e) {
    throw SafetensorsError(label + ": not valid JSON (byte " + std::to_string(e.byte) + ")");
  }
  if (!doc.is_object()) throw SafetensorsError(label + ": must be a JSON object");
  auto map = doc.find("weight_map");
  if (map == doc.end() || !map->is_object()) {
    throw SafetensorsError(label + ": \"weight_map\" is missing or not an object");
  }
  for (const auto& [tensor, shard] : map->items()) {
    if (!shard.is_string()) {
      throw SafetensorsError(label + ": weight_map entry for tensor " + printable(tensor) + " is not a file name");
    }
    const auto& name = shard.get_ref<const std::string&>();
    fs::path rel(name);
    bool unsafe = name.empty() || rel.is_absolute() || name.find('\0') != std::string::npos;
    for (const auto& part : rel) unsafe = unsafe || part == "..";
    if (unsafe) {
      throw SafetensorsError(label + ": weight_map entry for tensor " + printable(tensor) + " names " +
                             printable(name) + ", which is not a file inside the model directory");
    }
    shards.insert(dir / rel);
  }
}

struct Stored {
  std::string dtype;
  std::vector<uint64_t> shape;
  uint64_t elements = 0;
  uint64_t bytes = 0;
  size_t file = 0;
};

bool is_quantized_storage(std::string_view dtype) {
  return dtype == "I8" || dtype == "U8" || dtype == "I32" || dtype == "U32" || dtype == "F4" ||
         dtype.substr(0, 3) == "F8_" || dtype.substr(0, 3) == "F6_";
}

// Keyed by tensor name (views into strings kept alive by the caller), so probing by a prefix of a
// name builds no string.
using TensorMap = std::unordered_map<std::string_view, Stored>;

class Counter {
 public:
  Counter(const TensorMap& tensors, const std::vector<fs::path>& files, const QuantizationHint& hint)
      : tensors_(tensors), files_(files), hint_(hint) {
    quantized_model_ = !hint.method.empty();
    for (const auto& [name, t] : tensors_) {
      std::string_view dtype = t.dtype;
      if (dtype.substr(0, 3) == "F8_" || dtype.substr(0, 3) == "F6_" || dtype == "F4" ||
          ends_with(name, ".qweight") || ends_with(name, ".weight_packed")) {
        quantized_model_ = true;
      }
      if (auto parent = tensor_parent(name); !parent.empty()) {
        parents_.emplace(name, parent);
        std::string_view child = name.substr(parent.size() + 1);
        if (child == "absmax" || child == "quant_map" || child.substr(0, 12) == "quant_state." ||
            child == "nested_absmax" || child == "nested_quant_map") {
          bnb4_weights_.insert(std::string(parent));
          quantized_model_ = true;
        }
      }
    }
  }

  void run(WeightsSummary& out) {
    std::map<std::string, uint64_t> skipped;
    for (const auto& [name, t] : tensors_) {
      out.stored_bytes += t.bytes;
      std::string skip_label = auxiliary_label(name, t);
      if (!skip_label.empty()) {
        ++skipped[skip_label];
        continue;
      }
      uint64_t params = t.elements;
      if (unsigned bits = packed_bits(name); bits != 0) {
        unsigned storage = dtype_bits(t.dtype);
        if (bits > storage) {
          throw SafetensorsError(files_[t.file].string() + ": tensor " + printable(name) + ": " + std::to_string(bits) +
                                 "-bit quantization cannot be packed into " + t.dtype + " storage");
        }
        unsigned __int128 logical = static_cast<unsigned __int128>(t.elements) * storage / bits;
        if (logical > UINT64_MAX) {
          throw SafetensorsError(files_[t.file].string() + ": tensor " + printable(name) +
                                 ": unpacked count overflows");
        }
        params = static_cast<uint64_t>(logical);
        out.packed_low_bit = true;
      }
      if (__builtin_add_overflow(out.parameter_count, params, &out.parameter_count)) {
        throw SafetensorsError(files_[t.file].string() + ": parameter count overflows at tensor " + printable(name));
      }
      out.dtype_parameters[t.dtype] += params;
    }
    for (const auto& [label, count] : skipped) {
      out.quantization_tensors_skipped.push_back(label + " x" + std::to_string(count));
    }
  }

 private:
  bool has(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

  // The longest proper dotted prefix of name that is itself a tensor (only serialisation schemes such
  // as bitsandbytes hang tensors below a tensor), or "".
  std::string_view tensor_parent(std::string_view name) const {
    for (size_t pos = name.rfind('.'); pos != std::string_view::npos && pos > 0; pos = name.rfind('.', pos - 1)) {
      if (has(name.substr(0, pos))) return name.substr(0, pos);
    }
    return {};
  }

  static std::pair<std::string, std::string> split(std::string_view name) {
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos) return {"", std::string(name)};
    return {std::string(name.substr(0, dot + 1)), std::string(name.substr(dot + 1))};
  }

  // Bits per logical value when name is packed low-bit storage, else 0.
  unsigned packed_bits(std::string_view name) const {
    const auto [module, leaf] = split(name);
    const unsigned hinted = hint_.bits > 0 ? static_cast<unsigned>(hint_.bits) : 4;
    if (leaf == "qweight" || leaf == "weight_packed") return hinted;
    if (bnb4_weights_.count(name)) return 4;
    if (leaf == "weight" && is_fp4_pairs(module)) return 4;
    if (ends_with(leaf, "_blocks")) {
      std::string base = leaf.substr(0, leaf.size() - 7);
      if (has(module + base + "_scales") || hint_.method == "mxfp4") return 4;
    }
    return 0;
  }

  // ModelOpt NVFP4 (and MXFP4 outside gpt-oss) store `weight` as U8 pairs of FP4 values beside FP8
  // block scales, a per-tensor `weight_scale_2`, or a 4-bit hint.
  bool is_fp4_pairs(const std::string& module) const {
    auto weight = tensors_.find(module + "weight");
    auto scale = tensors_.find(module + "weight_scale");
    if (weight == tensors_.end() || scale == tensors_.end() || weight->second.dtype != "U8") return false;
    const std::string& scale_dtype = scale->second.dtype;
    return scale_dtype == "F8_E4M3" || scale_dtype == "F8_E8M0" || has(module + "weight_scale_2") || hint_.bits == 4;
  }

  // Why name is not a parameter ("" when it is one).
  std::string auxiliary_label(std::string_view name, const Stored& t) const {
    if (auto found = parents_.find(name); found != parents_.end()) {
      std::string_view parent = found->second;
      size_t module_end = parent.rfind('.');
      std::string label(name.substr(module_end == std::string_view::npos ? 0 : module_end + 1));
      if (auto q = label.find(".quant_state."); q != std::string::npos) label.erase(q + 13).append("*");
      return label;
    }
    const auto [module, leaf] = split(name);
    if ((leaf == "qzeros" || leaf == "scales" || leaf == "g_idx") && has(module + "qweight")) return leaf;
    static const std::set<std::string> kWeightCompanions = {
        "weight_scale",       "weight_scale_inv", "weight_scale_2",    "weight_zero_point",
        "weight_global_scale", "weight_shape",    "weight_g_idx",      "input_scale",
        "input_zero_point",   "input_global_scale", "output_scale"};
    if (kWeightCompanions.count(leaf)) {
      auto weight = tensors_.find(module + "weight");
      bool quantized_weight = has(module + "weight_packed") ||
                              (weight != tensors_.end() && is_quantized_storage(weight->second.dtype));
      if (quantized_weight || ((weight != tensors_.end()) && quantized_model_)) return leaf;
    }
    if (leaf == "SCB" && has(module + "weight")) return leaf;
    if (leaf == "weight_format" && has(module + "weight") && has(module + "SCB")) return leaf;
    if (ends_with(leaf, "_scales") && has(module + leaf.substr(0, leaf.size() - 7) + "_blocks")) {
      return "*_scales";
    }
    if ((leaf == "k_scale" || leaf == "v_scale" || leaf == "kv_scale" || leaf == "q_scale" ||
         leaf == "prob_scale") &&
        quantized_model_ && t.elements == 1) {
      return leaf;
    }
    // Non-persistent buffers that some exporters wrote anyway; they are not parameters.
    if (leaf == "inv_freq") return "inv_freq (buffer)";
    if (leaf == "position_ids" && t.dtype.front() != 'F' && t.dtype != "BF16") return "position_ids (buffer)";
    if (ends_with(name, "attn.masked_bias") && t.elements == 1) return "masked_bias (buffer)";
    if (ends_with(name, "attn.bias") && t.shape.size() == 4 && t.shape[0] == 1 && t.shape[1] == 1 &&
        t.shape[2] == t.shape[3]) {
      return "attn.bias causal mask (buffer)";
    }
    return {};
  }

  const TensorMap& tensors_;
  const std::vector<fs::path>& files_;
  const QuantizationHint& hint_;
  bool quantized_model_ = false;
  std::set<std::string, std::less<>> bnb4_weights_;
  std::unordered_map<std::string_view, std::string_view> parents_;  // tensor -> tensor it hangs below
};

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size() && i < 8; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() > 8) s += ", ... " + std::to_string(shape.size()) + " dims";
  return s + "]";
}

}  // namespace

std::vector<fs::path> find_safetensors_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  std::vector<fs::path> indexes;
  if (fs::is_regular_file(dir / "model.safetensors.index.json", ec)) {
    indexes.push_back(dir / "model.safetensors.index.json");
  }
  const bool standard_index = !indexes.empty();
  std::vector<fs::path> loose;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;  // follows symlinks, as in a Hugging Face cache snapshot
    if (ends_with(name, ".safetensors.index.json") && name != "model.safetensors.index.json") {
      if (!standard_index) indexes.push_back(it->path());
    } else if (ends_with(name, ".safetensors")) {
      loose.push_back(it->path());
    }
  }
  if (ec) throw SafetensorsError(dir.string() + ": cannot list directory: " + ec.message());
  if (indexes.empty()) {
    std::sort(loose.begin(), loose.end());
    return loose;
  }
  std::set<fs::path> shards;
  std::sort(indexes.begin(), indexes.end());
  for (const auto& index : indexes) add_index_shards(dir, index, shards);
  for (const auto& shard : shards) {
    if (!fs::is_regular_file(shard, ec)) {
      throw SafetensorsError(shard.string() + ": shard named by the safetensors index is missing (or not a file)");
    }
  }
  return {shards.begin(), shards.end()};
}

WeightsSummary summarize_safetensors(const std::vector<fs::path>& files, const QuantizationHint& hint) {
  WeightsSummary out;
  out.files = files;
  std::deque<std::string> names;
  TensorMap tensors;
  for (size_t i = 0; i < files.size(); ++i) {
    SafetensorsHeader header = read_safetensors_header(files[i]);
    tensors.reserve(tensors.size() + header.tensors.size());
    for (auto& t : header.tensors) {
      Stored s{t.dtype, std::move(t.shape), t.element_count, t.data_end - t.data_begin, i};
      auto it = tensors.find(t.name);
      const bool inserted = it == tensors.end();
      if (inserted) it = tensors.emplace(names.emplace_back(std::move(t.name)), std::move(s)).first;
      // The same tensor in two files (a copied shard, a .fp16 variant beside the original) counts once;
      // two different shapes under one name mean the files are not one model.
      if (!inserted && it->second.shape != s.shape) {
        throw SafetensorsError(files[i].string() + ": tensor " + printable(t.name) + " has shape " +
                               shape_text(s.shape) + " but " + files[it->second.file].string() + " has it as " +
                               shape_text(it->second.shape));
      }
    }
  }
  Counter(tensors, files, hint).run(out);
  return out;
}

}  // namespace modelagent
