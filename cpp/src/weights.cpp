// Locating a model's safetensors files and counting its logical parameters.
//
// Tensor roles are decided from the names around a tensor, never from its name alone: `scales` is a
// GPTQ/AWQ auxiliary only beside a `qweight`, `weight_scale` only beside a quantized `weight`, and
// so on, so a real parameter that merely shares a suffix is still counted.

#include "modelagent/weights.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

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
  if (!in) throw SafetensorsError(index.string() + ": cannot read");
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (in.bad()) throw SafetensorsError(index.string() + ": cannot read");
  text.resize(static_cast<size_t>(in.gcount()));  // the file may have shrunk since it was sized
  return text;
}

// Receives nlohmann's SAX events for an index and keeps only the distinct shard names of its
// "weight_map": an index of a large model maps ~100k tensors to a few hundred files, and a DOM of it
// would be a std::map node and two strings per tensor.
//
// The checks and their precedence are those of reading the whole document first: a JSON syntax error
// anywhere wins, then the top level must be an object, then "weight_map" (the last one, if the key is
// repeated) must be an object, and of the bad entries the one with the smallest tensor name is reported.
class IndexHandler {
 public:
  using json = nlohmann::json;

  bool null() { return value(Kind::kOther, nullptr); }
  bool boolean(bool) { return value(Kind::kOther, nullptr); }
  bool number_integer(json::number_integer_t) { return value(Kind::kOther, nullptr); }
  bool number_unsigned(json::number_unsigned_t) { return value(Kind::kOther, nullptr); }
  bool number_float(json::number_float_t, const json::string_t&) { return value(Kind::kOther, nullptr); }
  bool string(json::string_t& s) { return value(Kind::kOther, &s); }
  bool binary(json::binary_t&) { return value(Kind::kOther, nullptr); }
  bool start_object(std::size_t) {
    value(Kind::kObject, nullptr);
    if (depth_ == 1 && weight_map_key_) weight_map_open_ = true;
    ++depth_;
    return true;
  }
  bool start_array(std::size_t) {
    value(Kind::kOther, nullptr);
    ++depth_;
    return true;
  }
  bool end_object() {
    if (--depth_ == 1) weight_map_open_ = false;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool key(json::string_t& k) {
    if (depth_ == 1) {
      weight_map_key_ = k == "weight_map";
      if (weight_map_key_) {  // a repeated key replaces what came before it
        weight_map_seen_ = true;
        weight_map_is_object_ = false;
        names_.clear();
        bad_tensor_.reset();
        last_name_.clear();
        last_safe_ = false;
      }
    } else if (depth_ == 2 && weight_map_open_) {
      tensor_.swap(k);  // the lexer clears k before its next token; swapping saves a copy per tensor
    }
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    error_byte_ = position;  // nlohmann's parse_error::byte: 1-based index of the offending character
    return false;
  }

  std::size_t error_byte() const { return error_byte_; }
  bool top_is_object() const { return top_is_object_; }
  bool weight_map_is_object() const { return weight_map_seen_ && weight_map_is_object_; }
  const std::set<std::string>& names() const { return names_; }

  // The bad entry with the smallest tensor name: (tensor, shard name or nullopt when not a string).
  const std::optional<std::pair<std::string, std::optional<std::string>>>& bad_tensor() const { return bad_tensor_; }

 private:
  enum class Kind { kObject, kOther };

  bool value(Kind kind, const std::string* text) {
    if (depth_ == 0) top_is_object_ = kind == Kind::kObject;
    if (depth_ == 1 && weight_map_key_) weight_map_is_object_ = kind == Kind::kObject;
    if (depth_ == 2 && weight_map_open_) entry(text);
    return true;
  }

  void entry(const std::string* shard) {
    if (shard == nullptr) {
      note_bad(std::nullopt);
      return;
    }
    // Consecutive entries nearly always name the same shard: validate each distinct name once.
    if (*shard != last_name_) {
      last_name_ = *shard;
      last_safe_ = safe_name(last_name_);
      if (last_safe_) names_.insert(last_name_);
    }
    if (!last_safe_) note_bad(*shard);
  }

  static bool safe_name(const std::string& name) {
    fs::path rel(name);
    bool unsafe = name.empty() || rel.is_absolute() || name.find('\0') != std::string::npos;
    for (const auto& part : rel) unsafe = unsafe || part == "..";
    return !unsafe;
  }

  void note_bad(std::optional<std::string> shard) {
    if (!bad_tensor_ || tensor_ < bad_tensor_->first) bad_tensor_.emplace(tensor_, std::move(shard));
  }

  std::size_t depth_ = 0;
  bool top_is_object_ = false;
  bool weight_map_key_ = false;        // the current top-level key is "weight_map"
  bool weight_map_seen_ = false;
  bool weight_map_is_object_ = false;  // the value of the last "weight_map" key is an object
  bool weight_map_open_ = false;       // inside that object
  std::size_t error_byte_ = 0;
  std::string tensor_;  // the current weight_map key
  std::string last_name_;  // the shard named by the previous entry, and whether it is safe ("" is not)
  bool last_safe_ = false;
  std::set<std::string> names_;
  std::optional<std::pair<std::string, std::optional<std::string>>> bad_tensor_;
};

// Shard names listed by one index's weight_map, resolved against dir.
void add_index_shards(const fs::path& dir, const fs::path& index, std::set<fs::path>& shards) {
  const std::string label = index.string();
  const std::string text = read_index(index);
  IndexHandler handler;
  if (!nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &handler)) {
    throw SafetensorsError(label + ": not valid JSON (byte " + std::to_string(handler.error_byte()) + ")");
  }
  if (!handler.top_is_object()) throw SafetensorsError(label + ": must be a JSON object");
  if (!handler.weight_map_is_object()) {
    throw SafetensorsError(label + ": \"weight_map\" is missing or not an object");
  }
  if (const auto& bad = handler.bad_tensor()) {
    const auto& [tensor, shard] = *bad;
    if (!shard) {
      throw SafetensorsError(label + ": weight_map entry for tensor " + printable(tensor) + " is not a file name");
    }
    throw SafetensorsError(label + ": weight_map entry for tensor " + printable(tensor) + " names " +
                           printable(*shard) + ", which is not a file inside the model directory");
  }
  for (const auto& name : handler.names()) shards.insert(dir / fs::path(name));
}

struct Stored {
  std::string_view name;  // a view of the name in the header it was read from
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

// Every tensor name once, in file order (so that the passes over all of them walk contiguous memory),
// and an index by name. The index is keyed by views, so probing by a prefix of a name builds no string.
struct TensorMap {
  std::vector<Stored> list;
  std::unordered_map<std::string_view, size_t> index;

  const Stored* find(std::string_view name) const {
    auto it = index.find(name);
    return it == index.end() ? nullptr : &list[it->second];
  }
};

class Counter {
 public:
  Counter(const TensorMap& tensors, const std::vector<fs::path>& files, const QuantizationHint& hint)
      : tensors_(tensors), files_(files), hint_(hint) {
    quantized_model_ = !hint.method.empty();
    for (const auto& t : tensors_.list) leaves_.insert(split(t.name).second);
    for (const auto& t : tensors_.list) {
      const std::string_view name = t.name;
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
    std::string skip_label;
    for (const auto& t : tensors_.list) {
      const std::string_view name = t.name;
      out.stored_bytes += t.bytes;
      if (auxiliary_label(name, t, skip_label)) {
        ++skipped[skip_label];
        continue;
      }
      uint64_t params = t.elements;
      if (unsigned bits = packed_bits(name, t); bits != 0) {
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
  bool has(std::string_view name) const { return tensors_.find(name) != nullptr; }

  // The tensor named module + leaf (module ends with its dot), looked up without allocating: the name
  // is assembled in a buffer reused by every lookup.
  const Stored* find(std::string_view module, std::string_view leaf) const {
    key_.assign(module).append(leaf);
    return tensors_.find(key_);
  }
  bool has(std::string_view module, std::string_view leaf) const { return find(module, leaf) != nullptr; }

  // The longest proper dotted prefix of name that is itself a tensor (only serialisation schemes such
  // as bitsandbytes hang tensors below a tensor), or "".
  std::string_view tensor_parent(std::string_view name) const {
    for (size_t pos = name.rfind('.'); pos != std::string_view::npos && pos > 0; pos = name.rfind('.', pos - 1)) {
      std::string_view prefix = name.substr(0, pos);
      // A prefix can only be a tensor if it ends like one: most prefixes (model.layers.3, ...) are
      // ruled out by this small set without hashing the whole prefix.
      if (!leaves_.count(split(prefix).second)) continue;
      if (has(prefix)) return prefix;
    }
    return {};
  }

  // (module with its trailing dot, leaf): "a.b.weight" -> ("a.b.", "weight"), "x" -> ("", "x").
  static std::pair<std::string_view, std::string_view> split(std::string_view name) {
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos) return {{}, name};
    return {name.substr(0, dot + 1), name.substr(dot + 1)};
  }

  // Bits per logical value when name is packed low-bit storage, else 0.
  unsigned packed_bits(std::string_view name, const Stored& t) const {
    const auto [module, leaf] = split(name);
    const unsigned hinted = hint_.bits > 0 ? static_cast<unsigned>(hint_.bits) : 4;
    if (leaf == "qweight" || leaf == "weight_packed") return hinted;
    if (bnb4_weights_.count(name)) return 4;
    if (leaf == "weight" && is_fp4_pairs(module, t)) return 4;
    if (ends_with(leaf, "_blocks")) {
      std::string scales(leaf.substr(0, leaf.size() - 7));
      scales += "_scales";
      if (has(module, scales) || hint_.method == "mxfp4") return 4;
    }
    return 0;
  }

  // ModelOpt NVFP4 (and MXFP4 outside gpt-oss) store `weight` as U8 pairs of FP4 values beside FP8
  // block scales, a per-tensor `weight_scale_2`, or a 4-bit hint. weight is module + "weight".
  bool is_fp4_pairs(std::string_view module, const Stored& weight) const {
    if (weight.dtype != "U8") return false;
    auto scale = find(module, "weight_scale");
    if (scale == nullptr) return false;
    const std::string& scale_dtype = scale->dtype;
    return scale_dtype == "F8_E4M3" || scale_dtype == "F8_E8M0" || has(module, "weight_scale_2") || hint_.bits == 4;
  }

  // Whether name is not a parameter; if so, why, in label.
  bool auxiliary_label(std::string_view name, const Stored& t, std::string& label) const {
    if (auto found = parents_.find(name); found != parents_.end()) {
      std::string_view parent = found->second;
      size_t module_end = parent.rfind('.');
      label.assign(name.substr(module_end == std::string_view::npos ? 0 : module_end + 1));
      if (auto q = label.find(".quant_state."); q != std::string::npos) label.erase(q + 13).append("*");
      return true;
    }
    const auto [module, leaf] = split(name);
    auto labelled = [&label](std::string_view text) {
      label.assign(text);
      return true;
    };
    if ((leaf == "qzeros" || leaf == "scales" || leaf == "g_idx") && has(module, "qweight")) return labelled(leaf);
    static const std::set<std::string_view> kWeightCompanions = {
        "weight_scale",       "weight_scale_inv", "weight_scale_2",    "weight_zero_point",
        "weight_global_scale", "weight_shape",    "weight_g_idx",      "input_scale",
        "input_zero_point",   "input_global_scale", "output_scale"};
    if (kWeightCompanions.count(leaf)) {
      auto weight = find(module, "weight");
      if (weight != nullptr && (quantized_model_ || is_quantized_storage(weight->dtype))) return labelled(leaf);
      if (has(module, "weight_packed")) return labelled(leaf);
    }
    if (leaf == "SCB" && has(module, "weight")) return labelled(leaf);
    if (leaf == "weight_format" && has(module, "weight") && has(module, "SCB")) return labelled(leaf);
    if (ends_with(leaf, "_scales")) {
      std::string blocks(leaf.substr(0, leaf.size() - 7));
      blocks += "_blocks";
      if (has(module, blocks)) return labelled("*_scales");
    }
    if ((leaf == "k_scale" || leaf == "v_scale" || leaf == "kv_scale" || leaf == "q_scale" ||
         leaf == "prob_scale") &&
        quantized_model_ && t.elements == 1) {
      return labelled(leaf);
    }
    // Non-persistent buffers that some exporters wrote anyway; they are not parameters.
    if (leaf == "inv_freq") return labelled("inv_freq (buffer)");
    if (leaf == "position_ids" && t.dtype.front() != 'F' && t.dtype != "BF16") return labelled("position_ids (buffer)");
    if (ends_with(name, "attn.masked_bias") && t.elements == 1) return labelled("masked_bias (buffer)");
    if (ends_with(name, "attn.bias") && t.shape.size() == 4 && t.shape[0] == 1 && t.shape[1] == 1 &&
        t.shape[2] == t.shape[3]) {
      return labelled("attn.bias causal mask (buffer)");
    }
    return false;
  }

  const TensorMap& tensors_;
  const std::vector<fs::path>& files_;
  const QuantizationHint& hint_;
  bool quantized_model_ = false;
  std::set<std::string, std::less<>> bnb4_weights_;
  std::unordered_map<std::string_view, std::string_view> parents_;  // tensor -> tensor it hangs below
  std::unordered_set<std::string_view> leaves_;  // every tensor name's last component
  mutable std::string key_;  // the name being looked up by find(module, leaf)
};

// Every file's header, headers[i] from files[i], read by a few threads that each take the next file
// index in turn. Of several bad files, the first in file order is reported, as by a serial read.
std::vector<SafetensorsHeader> read_headers(const std::vector<fs::path>& files) {
  std::vector<SafetensorsHeader> headers(files.size());
  std::vector<std::exception_ptr> errors(files.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < files.size(); i = next++) {
      try {
        headers[i] = read_safetensors_header(files[i]);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const size_t threads = std::min<size_t>({std::max(1u, std::thread::hardware_concurrency()), 8, files.size()});
  std::vector<std::jthread> helpers;
  try {
    for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work);
  } catch (const std::system_error&) {
    // Fewer threads than asked for: those started and this one still read every file.
  }
  work();
  for (auto& helper : helpers) helper.join();
  for (const auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  return headers;
}

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
  const fs::path standard_index = dir / "model.safetensors.index.json";
  const bool has_standard_index = fs::is_regular_file(standard_index, ec);

  // A large model's standard index is megabytes of JSON: it is parsed on its own thread while this
  // one lists the directory. Errors keep their serial precedence: listing, then index, then shards.
  std::set<fs::path> shards;
  std::exception_ptr index_error;
  std::jthread index_parser;  // joins on every way out, an exception from the listing included
  auto parse_standard_index = [&] {
    try {
      add_index_shards(dir, standard_index, shards);
    } catch (...) {
      index_error = std::current_exception();
    }
  };
  if (has_standard_index) {
    try {
      index_parser = std::jthread(parse_standard_index);
    } catch (const std::system_error&) {
      parse_standard_index();  // no thread to be had: parse it here, first
    }
  }

  std::vector<fs::path> indexes;
  std::vector<fs::path> loose;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;  // follows symlinks, as in a Hugging Face cache snapshot
    if (ends_with(name, ".safetensors.index.json") && name != "model.safetensors.index.json") {
      if (!has_standard_index) indexes.push_back(it->path());
    } else if (ends_with(name, ".safetensors")) {
      loose.push_back(it->path());
    }
  }
  if (index_parser.joinable()) index_parser.join();
  if (ec) throw SafetensorsError(dir.string() + ": cannot list directory: " + ec.message());
  if (index_error) std::rethrow_exception(index_error);

  if (!has_standard_index) {
    if (indexes.empty()) {
      std::sort(loose.begin(), loose.end());
      return loose;
    }
    std::sort(indexes.begin(), indexes.end());
    for (const auto& index : indexes) add_index_shards(dir, index, shards);
  }
  // A shard the listing found as a regular file needs no second look; others (in a subdirectory, or
  // absent) are checked one by one.
  std::sort(loose.begin(), loose.end());
  for (const auto& shard : shards) {
    if (std::binary_search(loose.begin(), loose.end(), shard)) continue;
    if (!fs::is_regular_file(shard, ec)) {
      throw SafetensorsError(shard.string() + ": shard named by the safetensors index is missing (or not a file)");
    }
  }
  return {shards.begin(), shards.end()};
}

WeightsSummary summarize_safetensors(const std::vector<fs::path>& files, const QuantizationHint& hint) {
  WeightsSummary out;
  out.files = files;
  // Every header is read before the map is filled so that it is sized once (growing it file by file
  // rehashes it each time). The map's keys are views of the names in these headers.
  std::vector<SafetensorsHeader> headers = read_headers(files);
  size_t total = 0;
  for (const auto& header : headers) total += header.tensors.size();
  TensorMap tensors;
  tensors.list.reserve(total);
  tensors.index.reserve(total);
  for (size_t i = 0; i < files.size(); ++i) {
    for (auto& t : headers[i].tensors) {
      auto [it, inserted] = tensors.index.try_emplace(t.name, tensors.list.size());
      if (inserted) {
        tensors.list.push_back(
            Stored{t.name, std::move(t.dtype), std::move(t.shape), t.element_count, t.data_end - t.data_begin, i});
        continue;
      }
      // The same tensor in two files (a copied shard, a .fp16 variant beside the original) counts once;
      // two different shapes under one name mean the files are not one model.
      const Stored& first = tensors.list[it->second];
      if (first.shape != t.shape) {
        throw SafetensorsError(files[i].string() + ": tensor " + printable(t.name) + " has shape " +
                               shape_text(t.shape) + " but " + files[first.file].string() + " has it as " +
                               shape_text(first.shape));
      }
    }
  }
  Counter(tensors, files, hint).run(out);
  return out;
}

}  // namespace modelagent
