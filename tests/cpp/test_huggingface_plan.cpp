#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "modelagent/huggingface.hpp"

namespace hf = modelagent::hf;

namespace {

const std::string kSha1 = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
const std::string kSha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

std::vector<hf::RepoFile> repo(std::initializer_list<const char*> paths) {
  std::vector<hf::RepoFile> files;
  for (const char* p : paths) {
    hf::RepoFile f;
    f.path = p;
    f.size = 10;
    f.blob_id = kSha1;
    files.push_back(f);
  }
  return files;
}

std::vector<std::string> selected(const hf::Selection& s) {
  std::vector<std::string> out;
  for (const auto& f : s.selected) out.push_back(f.path);
  return out;
}

std::string reason(const hf::Selection& s, const std::string& path) {
  for (const auto& e : s.excluded) {
    if (e.path == path) return e.reason;
  }
  return "";
}

using Paths = std::vector<std::string>;

}  // namespace

TEST(HfSelect, DefaultSkipsDuplicateWeightFormatsBesideSafetensors) {
  auto files = repo({"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
                     "tf_model.h5", "flax_model.msgpack", "rust_model.ot", "model.gguf", "training_args.bin",
                     "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model",
                     "onnx/model.onnx", "consolidated.safetensors", "tokenizer.json"});
  auto s = hf::select_files(files, {});
  EXPECT_EQ(selected(s), (Paths{"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                "model.safetensors.index.json", "pytorch_model.bin.index.json", "tokenizer.json"}));
  EXPECT_EQ(reason(s, "pytorch_model.bin"), "duplicate weight format");
  EXPECT_EQ(reason(s, "original/params.json"), "duplicate weight format");
  EXPECT_EQ(reason(s, "consolidated.safetensors"), "duplicate weight format");
  EXPECT_EQ(s.selected.size() + s.excluded.size(), files.size());
}

TEST(HfSelect, NothingIsDuplicateWithoutSafetensors) {
  auto files = repo({"config.json", "pytorch_model.bin", "original/consolidated.00.pth", "model.gguf"});
  EXPECT_EQ(selected(hf::select_files(files, {})).size(), files.size());
  // consolidated / original safetensors alone do not count as the primary weights.
  auto mistral = repo({"consolidated.safetensors", "params.json", "pytorch_model.bin"});
  EXPECT_EQ(selected(hf::select_files(mistral, {})).size(), mistral.size());
}

TEST(HfSelect, DuplicatesAreJudgedPerDirectory) {
  // diffusers layout: a component with only .bin weights keeps them.
  auto files = repo({"unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin",
                     "safety_checker/pytorch_model.bin", "model_index.json"});
  auto s = hf::select_files(files, {});
  EXPECT_EQ(selected(s), (Paths{"unet/diffusion_pytorch_model.safetensors", "safety_checker/pytorch_model.bin",
                                "model_index.json"}));
  EXPECT_TRUE(hf::is_duplicate_weight_format("unet/diffusion_pytorch_model.bin", files));
  EXPECT_FALSE(hf::is_duplicate_weight_format("safety_checker/pytorch_model.bin", files));
}

TEST(HfSelect, IncludePatternsAndExplicitIncludeBeatsDefault) {
  auto files = repo({"config.json", "model.safetensors", "pytorch_model.bin", "sub/config.json"});
  hf::FileFilter only_json;
  only_json.include = {"*.json"};
  auto s = hf::select_files(files, only_json);
  EXPECT_EQ(selected(s), (Paths{"config.json"}));
  EXPECT_EQ(reason(s, "sub/config.json"), "not included");

  hf::FileFilter want_bin;
  want_bin.include = {"*.bin", "*.json"};
  EXPECT_EQ(selected(hf::select_files(files, want_bin)), (Paths{"config.json", "pytorch_model.bin"}));

  hf::FileFilter everything;
  everything.include = {"**"};
  EXPECT_EQ(selected(hf::select_files(files, everything)).size(), files.size());

  hf::FileFilter no_default;
  no_default.default_excludes = false;
  EXPECT_EQ(selected(hf::select_files(files, no_default)).size(), files.size());
}

TEST(HfSelect, ExcludePatternsWinOverIncludes) {
  auto files = repo({"config.json", "model.safetensors", "README.md", "docs/a.md"});
  hf::FileFilter f;
  f.include = {"**"};
  f.exclude = {"**/*.md"};
  auto s = hf::select_files(files, f);
  EXPECT_EQ(selected(s), (Paths{"config.json", "model.safetensors"}));
  EXPECT_EQ(reason(s, "docs/a.md"), "excluded by pattern '**/*.md'");
}

TEST(HfSelect, ReservedDirectoryIsNeverDownloaded) {
  auto files = repo({".modelagent/download.json", ".modelagent", "config.json", ".modelagentx"});
  hf::FileFilter all;
  all.include = {"**"};
  auto s = hf::select_files(files, all);
  EXPECT_EQ(selected(s), (Paths{"config.json", ".modelagentx"}));
  EXPECT_EQ(reason(s, ".modelagent/download.json"), "reserved path");
}

TEST(HfSelect, MalformedPatternIsAnError) {
  hf::FileFilter f;
  f.exclude = {"[oops"};
  try {
    hf::select_files(repo({"a"}), f);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[oops"), std::string::npos);
  }
}

TEST(HfPlan, ResolveUrlsAuthAndDigests) {
  hf::RepoFile lfs;
  lfs.path = "weights/model 1.safetensors";
  lfs.size = 123456;
  lfs.blob_id = kSha1;
  lfs.lfs_sha256 = kSha256;
  hf::RepoFile small;
  small.path = "config.json";
  small.size = 0;
  small.blob_id = kSha1;
  const std::string commit(40, 'a');
  auto plan = hf::build_plan("http://127.0.0.1:5", "org/name", commit, {lfs, small}, "tok");
  ASSERT_EQ(plan.files.size(), 2u);
  const auto& a = plan.files[0];
  EXPECT_EQ(a.relative_path, "weights/model 1.safetensors");
  EXPECT_EQ(a.url, "http://127.0.0.1:5/org/name/resolve/" + commit + "/weights/model%201.safetensors");
  EXPECT_EQ(a.size, 123456u);
  EXPECT_EQ(a.digest.kind, modelagent::DigestKind::Sha256);
  EXPECT_EQ(a.digest.value, kSha256);
  ASSERT_EQ(a.headers.size(), 1u);
  EXPECT_EQ(a.headers[0].first, "Authorization");
  EXPECT_EQ(a.headers[0].second, "Bearer tok");
  const auto& b = plan.files[1];
  EXPECT_EQ(b.size, 0u);
  EXPECT_EQ(b.digest.kind, modelagent::DigestKind::GitBlobSha1);
  EXPECT_EQ(b.digest.value, kSha1);
  auto anonymous = hf::build_plan("http://h", "org/name", commit, {small}, "");
  EXPECT_TRUE(anonymous.files[0].headers.empty());
}
