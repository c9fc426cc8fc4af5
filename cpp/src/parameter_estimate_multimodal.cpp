// Multimodal models: a language model (nested text_config / language_config, or the top-level fields) plus a
// vision tower and the projector between them, per family. Also the stand-alone vision encoders.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "parameter_estimate_detail.hpp"

namespace modelagent::param_estimate {

namespace {

// Plain ViT shape shared by the CLIP and SigLIP towers.
struct VitShape {
  uint64_t hidden = 0;
  uint64_t inter = 0;
  uint64_t layers = 0;
  uint64_t patch = 0;
  uint64_t image = 0;
  uint64_t channels = 3;
};

uint64_t patches(const VitShape& v) {
  if (v.patch == 0) return 0;
  const uint64_t side = v.image / v.patch;
  return (Count(side) * side).value();
}

Count vit_layer(uint64_t h, uint64_t inter) {
  return linear(h, h, true) * 4 + mlp(h, inter, false, true) + layer_norm(h, true) * 2;
}

// transformers CLIPVisionTransformer: class token, bias-free patch conv, learned positions, pre and post norm.
Count clip_tower(const VitShape& v) {
  const uint64_t h = v.hidden;
  return Count(h) + Count(v.channels) * v.patch * v.patch * h + (Count(patches(v)) + 1) * h + layer_norm(h, true) * 2 +
         Count(v.layers) * vit_layer(h, v.inter);
}

// transformers SiglipVisionTransformer: patch conv with bias, no class token, post norm, optional attention-pool
// head (probe, multi-head attention, norm, MLP).
Count siglip_tower(const VitShape& v, bool head) {
  const uint64_t h = v.hidden;
  Count c = Count(v.channels) * v.patch * v.patch * h + h + Count(patches(v)) * h + Count(v.layers) * vit_layer(h, v.inter) +
            layer_norm(h, true);
  if (head) c = c + h + linear(h, (Count(h) * 3).value(), true) + linear(h, h, true) + layer_norm(h, true) +
                mlp(h, v.inter, false, true);
  return c;
}

// timm VisionTransformer as DeepSeek-VL2 and Janus build it: no class token, final norm, and the latent
// attention-pool head timm creates for global_pool="map" (present in the checkpoints).
Count timm_siglip_tower(const VitShape& v) {
  const uint64_t h = v.hidden;
  const Count pool = Count(h) + linear(h, h, true) + linear(h, (Count(h) * 2).value(), true) + linear(h, h, true) +
                     layer_norm(h, true) + mlp(h, v.inter, false, true);
  return Count(v.channels) * v.patch * v.patch * h + h + Count(patches(v)) * h + Count(v.layers) * vit_layer(h, v.inter) +
         layer_norm(h, true) + pool;
}

// Towers referred to by name only.
std::optional<VitShape> named_clip(std::string_view name) {
  if (contains(name, "clip-vit-large-patch14"))
    return VitShape{1024, 4096, 24, 14, contains(name, "336") ? 336u : 224u, 3};
  if (contains(name, "clip-vit-base-patch16")) return VitShape{768, 3072, 12, 16, 224, 3};
  if (contains(name, "clip-vit-base-patch32")) return VitShape{768, 3072, 12, 32, 224, 3};
  return std::nullopt;
}

std::optional<VitShape> named_timm_siglip(std::string_view name) {
  if (contains(name, "so400m_patch14_384")) return VitShape{1152, 4304, 27, 14, 384, 3};
  if (contains(name, "so400m_patch14_224")) return VitShape{1152, 4304, 27, 14, 224, 3};
  if (contains(name, "large_patch16_384")) return VitShape{1024, 4096, 24, 16, 384, 3};
  return std::nullopt;
}

// transformers class defaults for nested vision configs, which may omit default-valued fields.
std::optional<VitShape> read_hf_vit(const Fields& v, std::string_view mt) {
  VitShape s;
  const bool siglip = contains(mt, "siglip");
  s.hidden = v.num("hidden_size").value_or(768);
  s.inter = v.num("intermediate_size").value_or(3072);
  s.layers = v.num("num_hidden_layers").value_or(12);
  s.patch = v.num("patch_size").value_or(siglip ? 16 : 32);
  s.image = v.num("image_size").value_or(224);
  s.channels = v.num("num_channels").value_or(3);
  if (s.hidden == 0 || s.layers == 0 || s.patch == 0) return std::nullopt;
  return s;
}

// A vision_config of the transformers CLIP or SigLIP kind.
std::optional<Count> hf_vision_tower(const Fields& v) {
  const std::string mt = ascii_lower(v.text("model_type"));
  const auto shape = read_hf_vit(v, mt);
  if (!shape) return std::nullopt;
  if (contains(mt, "siglip")) return siglip_tower(*shape, v.flag("vision_use_head").value_or(true));
  return clip_tower(*shape);
}

// transformers MllamaVisionModel: gated tile/position embeddings, a local and a gated global encoder.
std::optional<Count> mllama_vision(const Fields& v, uint64_t* output_dim) {
  const auto h = v.num("hidden_size");
  const auto inter = v.num("intermediate_size");
  const auto layers = v.num("num_hidden_layers");
  const auto global = v.num("num_global_layers");
  const auto patch = v.num("patch_size");
  const auto image = v.num("image_size");
  if (!h || !inter || !layers || !global || !patch || !image || *patch == 0) return std::nullopt;
  const uint64_t tiles = v.num("max_num_tiles").value_or(4);
  const uint64_t channels = v.num("num_channels").value_or(3);
  uint64_t ratios = 8;
  if (const nlohmann::json* r = v.array("supported_aspect_ratios")) ratios = r->size();
  const uint64_t side = *image / *patch;
  const Count positions = Count(side) * side + 1;
  const Count aspect_ids = Count(ratios) + 1;

  Count c = Count(channels) * *patch * *patch * *h + *h;                       // patch conv, class token
  c = c + positions * *h + 1 + aspect_ids * tiles * positions * *h;           // gated position + tile embedding
  c = c + (aspect_ids * tiles * *h + 1) * 2;                                  // pre/post tile embeddings
  c = c + layer_norm(*h, true) * 2;                                           // layernorm_pre/post
  const Count layer = linear(*h, *h, false) * 4 + mlp(*h, *inter, false, true) + layer_norm(*h, true) * 2;
  c = c + Count(*layers) * layer + Count(*global) * (layer + 2);
  uint64_t indices = 5;
  if (const nlohmann::json* i = v.array("intermediate_layers_indices")) indices = i->size();
  *output_dim = v.num("vision_output_dim").value_or((Count(*h) * (indices + 1)).value());
  return c;
}

// transformers Llama4VisionModel plus its pixel-shuffle adapter; `proj_out` receives the adapter output width.
std::optional<Count> llama4_vision(const Fields& v, uint64_t* proj_out) {
  const auto h = v.num("hidden_size");
  const auto inter = v.num("intermediate_size");
  const auto layers = v.num("num_hidden_layers");
  const auto patch = v.num("patch_size");
  const auto image = v.num("image_size");
  if (!h || !inter || !layers || !patch || !image || *patch == 0) return std::nullopt;
  const uint64_t channels = v.num("num_channels").value_or(3);
  const uint64_t proj_in = v.num("projector_input_dim").value_or(4096);
  *proj_out = v.num("projector_output_dim").value_or(4096);
  const uint64_t side = *image / *patch;
  Count c = Count(channels) * *patch * *patch * *h + *h + (Count(side) * side + 1) * *h + layer_norm(*h, true) * 2;
  c = c + Count(*layers) * vit_layer(*h, *inter);
  c = c + linear(*inter, proj_in, false) + linear(*proj_out, *proj_out, false);
  if (auto out = v.num("vision_output_dim")) *proj_out = *out;
  return c;
}

// Qwen2-VL (LayerNorm, plain MLP with mlp_ratio) and Qwen2.5-VL (RMSNorm, gated MLP) vision towers with the
// patch merger that projects into the language model.
std::optional<Count> qwen_vl_vision(const Fields& v, bool v2_5, uint64_t text_hidden) {
  const uint64_t channels = v.num({"in_chans", "in_channels"}).value_or(3);
  const uint64_t patch = v.num({"patch_size", "spatial_patch_size"}).value_or(14);
  const uint64_t temporal = v.num("temporal_patch_size").value_or(2);
  const uint64_t merge = v.num("spatial_merge_size").value_or(2);
  const auto depth = v.num("depth");
  if (!depth) return std::nullopt;
  uint64_t e = 0;
  uint64_t out = 0;
  Count block;
  if (v2_5) {
    e = v.num("hidden_size").value_or(1280);
    const auto inter = v.num("intermediate_size");
    if (!inter) return std::nullopt;
    out = v.num("out_hidden_size").value_or(text_hidden);
    block = Count(e) * 2 + linear(e, (Count(e) * 3).value(), true) + linear(e, e, true) + mlp(e, *inter, true, true);
  } else {
    e = v.num("embed_dim").value_or(1280);
    const double ratio = v.real("mlp_ratio").value_or(4.0);
    const double mlp_width = std::floor(static_cast<double>(e) * ratio);
    if (!(mlp_width >= 0 && mlp_width < 9.0e15)) return std::nullopt;
    out = v.num("hidden_size").value_or(text_hidden);
    block = layer_norm(e, true) * 2 + linear(e, (Count(e) * 3).value(), true) + linear(e, e, true) +
            mlp(e, static_cast<uint64_t>(mlp_width), false, true);
  }
  const uint64_t merged = (Count(e) * merge * merge).value();
  const Count merger = (v2_5 ? Count(e) : layer_norm(e, true)) + linear(merged, merged, true) + linear(merged, out, true);
  return Count(channels) * temporal * patch * patch * e + Count(*depth) * block + merger;
}

// DeepSeek MlpProjector variants (DeepSeek-VL2, Janus aligners); every linear has a bias.
std::optional<Count> deepseek_projector(const Fields& p, uint64_t default_in, uint64_t default_out,
                                        std::string_view default_type) {
  std::string type = p.text("projector_type");
  if (type.empty()) type = std::string(default_type);
  const uint64_t in = p.num("input_dim").value_or(default_in);
  const uint64_t n = p.num("n_embed").value_or(default_out);
  const uint64_t depth = p.num("depth").value_or(2);
  if (type == "identity") return Count(0);
  if (type == "linear") return linear(in, n, true);
  if (type == "mlp_gelu") return linear(in, n, true) + Count(depth > 0 ? depth - 1 : 0) * linear(n, n, true);
  if (type == "downsample_mlp_gelu") {
    const uint64_t ratio = p.num("mlp_ratio").value_or(1);
    const uint64_t ds = p.num("downsample_ratio").value_or(2);
    const uint64_t wide = (Count(n) * ratio).value();
    return linear((Count(in) * ds * ds).value(), wide, true) + Count(depth > 2 ? depth - 2 : 0) * linear(wide, wide, true) +
           linear(wide, n, true);
  }
  return std::nullopt;
}

// timm SigLIP tower of DeepSeek-VL2 / Janus: a named shape, overridden by explicit width/layers/mlp_ratio.
std::optional<Count> deepseek_vision(const Fields& v) {
  VitShape s = named_timm_siglip(v.text("model_name")).value_or(VitShape{});
  if (auto w = v.num("width")) s.hidden = *w;
  if (auto l = v.num("layers")) s.layers = *l;
  if (auto p = v.num("patch_size")) s.patch = *p;
  if (auto i = v.num("image_size")) s.image = *i;
  if (auto r = v.real("mlp_ratio")) {
    const double width = std::floor(static_cast<double>(s.hidden) * *r);
    if (!(width >= 0 && width < 9.0e15)) return std::nullopt;
    s.inter = static_cast<uint64_t>(width);
  }
  if (s.image == 0) s.image = 384;
  if (s.hidden == 0 || s.layers == 0 || s.patch == 0 || s.inter == 0) return std::nullopt;
  // create_siglip_vit keeps the blocks up to select_layer.
  if (v.has("select_layer")) {
    const nlohmann::json* sl = v.find("select_layer");
    if (sl->is_number_integer()) {
      const int64_t sel = sl->get<int64_t>();
      const int64_t total = static_cast<int64_t>(std::min<uint64_t>(s.layers, INT32_MAX));
      const int64_t keep = sel <= 0 ? std::min(total, total + sel + 1) : std::min(total, sel);
      if (keep <= 0) return std::nullopt;
      s.layers = static_cast<uint64_t>(keep);
    }
  }
  return timm_siglip_tower(s);
}

// Janus: understanding tower + aligner, generation VQ tokenizer + aligner + head + embedding.
std::optional<Count> janus_extras(const Fields& f, uint64_t text_hidden) {
  const auto vision = deepseek_vision(f.sub("vision_config").sub("params"));
  if (!vision) return std::nullopt;
  const auto aligner = deepseek_projector(f.sub("aligner_config").sub("params"), 1024, text_hidden, "mlp_gelu");
  const Fields gen_vision = f.sub("gen_vision_config").sub("params");
  const uint64_t codes = gen_vision.num("image_token_size").value_or(16384);
  const uint64_t code_dim = gen_vision.num("n_embed").value_or(8);
  const auto gen_aligner = deepseek_projector(f.sub("gen_aligner_config").sub("params"), code_dim, text_hidden, "mlp_gelu");
  if (!aligner || !gen_aligner) return std::nullopt;
  const Fields head = f.sub("gen_head_config").sub("params");
  const uint64_t head_in = head.num("n_embed").value_or(text_hidden);
  const uint64_t head_mid = head.num("image_token_embed").value_or(head_in);
  const uint64_t head_out = head.num("image_token_size").value_or(codes);
  // LlamaGen VQ-16 tokenizer (encoder/decoder ch 128, ch_mult 1,1,2,2,4, z 256, codebook 16384 x 8), counted
  // layer by layer from janus/models/vq_model.py; see docs/parameter-counts.md.
  constexpr uint64_t kVq16 = 71883403;
  const std::string gen_cls = f.sub("gen_vision_config").text("cls");
  if (!gen_cls.empty() && gen_cls != "VQ-16") return std::nullopt;
  return *vision + *aligner + *gen_aligner + linear(head_in, head_mid, true) + linear(head_mid, head_out, true) +
         Count(codes) * code_dim + kVq16;
}

// Original LLaVA repositories: the tower is loaded from `mm_vision_tower` at run time and is not part of the
// checkpoint; only the projector is.
std::optional<Count> llava_original_projector(const Fields& f, uint64_t text_hidden) {
  const uint64_t in = f.num("mm_hidden_size").value_or(1024);
  std::string type = f.text("mm_projector_type");
  if (type.empty()) type = "linear";
  if (type == "linear") return linear(in, text_hidden, true);
  if (type == "identity") return Count(0);
  if (type.rfind("mlp", 0) == 0 && ends_with(type, "x_gelu")) {
    const std::string digits = type.substr(3, type.size() - 3 - 6);
    if (digits.empty() || digits.size() > 2 || digits.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    const uint64_t depth = std::stoull(digits);
    if (depth == 0) return std::nullopt;
    return linear(in, text_hidden, true) + Count(depth - 1) * linear(text_hidden, text_hidden, true);
  }
  return std::nullopt;
}

}  // namespace

bool is_multimodal(const Fields& f, std::string_view mt) {
  if (one_of(mt, {"llava", "llava_next", "llava_onevision", "vipllava", "mllama", "llama4", "qwen2_vl", "qwen2_5_vl",
                  "phi3_v", "deepseek_vl_v2", "multi_modality", "gemma3", "paligemma"}))
    return true;
  const auto object = [&f](std::string_view key) {
    const nlohmann::json* v = f.find(key);
    return v != nullptr && v->is_object();
  };
  return object("text_config") || object("language_config") || object("vision_config");
}

std::optional<Count> estimate_vision_model(const Fields& f, std::string_view mt) {
  const auto shape = read_hf_vit(f, mt);
  if (!shape) return std::nullopt;
  if (mt == "siglip_vision_model") return siglip_tower(*shape, f.flag("vision_use_head").value_or(true));
  Count c = clip_tower(*shape);
  if (contains(f.first_architecture(), "WithProjection")) c = c + Count(shape->hidden) * f.num("projection_dim").value_or(512);
  return c;
}

std::optional<Count> estimate_multimodal(const Fields& f, std::string_view mt) {
  Fields text = f.sub("text_config");
  if (!text.valid()) text = f.sub("language_config");
  const bool nested = text.valid();
  if (!nested) text = f;

  DecoderContext ctx;
  ctx.arch = f.first_architecture();
  ctx.nested = nested;
  if (nested) {
    ctx.outer_tie = f.flag("tie_word_embeddings");
    if (ctx.arch.empty()) ctx.arch = text.first_architecture();
  }
  std::optional<DecoderSpec> spec;
  if (nested && !text.has("model_type") && one_of(mt, {"llava", "llava_next", "llava_onevision", "vipllava"})) {
    // LlavaConfig's default text config is a llama one.
    nlohmann::json with_type = *text.raw();
    with_type["model_type"] = "llama";
    spec = read_decoder(Fields(&with_type, f.bad_flag()), ctx);
  } else {
    spec = read_decoder(text, ctx);
  }
  if (!spec) return std::nullopt;
  const Count language = decoder_params(*spec);
  const uint64_t th = spec->hidden;
  const Fields vision = f.sub("vision_config");

  std::optional<Count> rest;
  if (one_of(mt, {"llava", "llava_next", "llava_onevision", "vipllava"})) {
    if (vision.valid()) {
      const auto tower = hf_vision_tower(vision);
      if (!tower) return std::nullopt;
      const uint64_t vh = read_hf_vit(vision, ascii_lower(vision.text("model_type")))->hidden;
      const bool bias = f.flag("multimodal_projector_bias").value_or(true);
      rest = *tower + linear(vh, th, bias) + linear(th, th, bias);
      if (mt != "llava") rest = *rest + th;  // image_newline
    } else if (f.has("mm_vision_tower")) {
      rest = llava_original_projector(f, th);
    }
  } else if (mt == "mllama") {
    uint64_t out = 0;
    const auto tower = mllama_vision(vision, &out);
    if (tower) rest = *tower + linear(out, th, true);
  } else if (mt == "llama4") {
    uint64_t out = 0;
    const auto tower = llama4_vision(vision, &out);
    if (tower) rest = *tower + linear(out, th, vision.flag("multi_modal_projector_bias").value_or(false));
  } else if (mt == "qwen2_vl" || mt == "qwen2_5_vl") {
    rest = qwen_vl_vision(vision, mt == "qwen2_5_vl", th);
  } else if (mt == "phi3_v") {
    const Fields img = f.sub("img_processor");
    const auto shape = named_clip(img.text("model_name"));
    if (shape) {
      const Fields embd = f.sub("embd_layer");
      const uint64_t dim_out = img.num("image_dim_out").value_or(shape->hidden);
      const bool hd = embd.flag("use_hd_transform").value_or(false);
      const uint64_t proj_in = hd ? (Count(dim_out) * 4).value() : dim_out;
      Count c = clip_tower(*shape);
      if (hd) c = c + Count(proj_in) * 2;  // glb_GN, sub_GN separators
      const std::string cls = embd.text("projection_cls");
      c = c + linear(proj_in, th, true);
      if (cls.empty() || cls == "mlp") c = c + linear(th, th, true);
      rest = c;
    }
  } else if (mt == "deepseek_vl_v2") {
    const auto tower = deepseek_vision(vision);
    const Fields proj = f.sub("projector_config");
    const auto projector = deepseek_projector(proj, vision.num("width").value_or(1152), th, "downsample_mlp_gelu");
    if (tower && projector) {
      const uint64_t n = proj.num("n_embed").value_or(th);
      rest = *tower + *projector + Count(n) * 2;  // image_newline, view_seperator
    }
  } else if (mt == "multi_modality") {
    rest = janus_extras(f, th);
  } else if (mt == "gemma3" || mt == "paligemma") {
    if (vision.valid()) {
      nlohmann::json v = *vision.raw();
      if (!v.contains("model_type")) v["model_type"] = "siglip_vision_model";
      if (!v.contains("vision_use_head")) v["vision_use_head"] = false;
      const Fields vf(&v, f.bad_flag());
      const auto tower = hf_vision_tower(vf);
      const auto shape = read_hf_vit(vf, "siglip_vision_model");
      if (tower && shape) {
        if (mt == "gemma3")
          rest = *tower + Count(shape->hidden) * th + shape->hidden;  // input projection, soft-embedding norm
        else
          rest = *tower + linear(shape->hidden, vision.num("projection_dim").value_or(th), true);
      }
    }
  } else if (vision.valid()) {
    // Unknown family with a ViT-style vision_config: CLIP-shaped tower and a two-layer projector. Class
    // defaults mean nothing for an unknown tower, so its size must be spelled out.
    const auto tower = vision.has("hidden_size") && vision.has("num_hidden_layers") && vision.has("intermediate_size")
                           ? hf_vision_tower(vision)
                           : std::nullopt;
    if (tower) {
      const uint64_t vh = read_hf_vit(vision, ascii_lower(vision.text("model_type")))->hidden;
      rest = *tower + linear(vh, th, true) + linear(th, th, true);
    }
  } else {
    rest = Count(0);  // a text_config / language_config wrapper without a vision part
  }
  if (!rest) return std::nullopt;
  return language + *rest;
}

}  // namespace modelagent::param_estimate
