#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/huggingface.hpp"
#include "support/hf_env.hpp"

namespace hf = modelagent::hf;

TEST(HfUri, ParsesRepoAndRevision) {
  auto ref = hf::parse_uri("hf://meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(ref.repo_id, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(ref.revision, "main");
  ref = hf::parse_uri("hf://org/name@v1.0");
  EXPECT_EQ(ref.repo_id, "org/name");
  EXPECT_EQ(ref.revision, "v1.0");
  ref = hf::parse_uri("hf://org/name@refs/pr/12");
  EXPECT_EQ(ref.revision, "refs/pr/12");
  ref = hf::parse_uri("hf://gpt2");
  EXPECT_EQ(ref.repo_id, "gpt2");
  ref = hf::parse_uri("hf://org/name@a@b");  // split at the first '@'
  EXPECT_EQ(ref.revision, "a@b");
}

TEST(HfUri, RejectsMalformedUrisNamingThem) {
  const char* bad[] = {"s3://bucket/x",   "hf://",           "hf://@main",        "hf://org/name@",
                       "hf://org//name",  "hf://org/name/x", "hf://org/na me",    "hf://org/-name",
                       "hf://org/name.",  "hf://a--b/c",     "hf://org/../x",     "hf:/org/name",
                       "hf://org/na$me",  "hf://org/name/"};
  for (const char* uri : bad) {
    try {
      hf::parse_uri(uri);
      ADD_FAILURE() << "accepted " << uri;
    } catch (const modelagent::InvalidStorageUri& e) {
      EXPECT_NE(std::string(e.what()).find(uri), std::string::npos) << e.what();
    }
  }
  std::string long_id = "hf://org/" + std::string(100, 'a');
  EXPECT_THROW(hf::parse_uri(long_id), modelagent::InvalidStorageUri);
  EXPECT_THROW(hf::parse_uri(std::string("hf://org/na\0me", 14)), modelagent::InvalidStorageUri);
}

TEST(HfUri, CommitHashDetection) {
  EXPECT_TRUE(hf::is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
  EXPECT_FALSE(hf::is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
  EXPECT_FALSE(hf::is_commit_hash("main"));
  EXPECT_FALSE(hf::is_commit_hash("0123456789abcdef0123456789abcdef0123456"));
}

TEST(HfUrls, PercentEncoding) {
  EXPECT_EQ(hf::percent_encode("refs/pr/1", false), "refs%2Fpr%2F1");
  EXPECT_EQ(hf::percent_encode("a b/c+d%.json", true), "a%20b/c%2Bd%25.json");
  EXPECT_EQ(hf::percent_encode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(hf::percent_encode("\xc3\xa9", false), "%C3%A9");
}

TEST(HfUrls, BuildsTheHubUrlShapes) {
  const std::string ep = "http://127.0.0.1:8080";
  EXPECT_EQ(hf::revision_url(ep, "org/name", "refs/pr/1"), ep + "/api/models/org/name/revision/refs%2Fpr%2F1");
  EXPECT_EQ(hf::revision_url(ep, "org/name", "main"), ep + "/api/models/org/name/revision/main");
  EXPECT_EQ(hf::tree_url(ep, "org/name", "abc"), ep + "/api/models/org/name/tree/abc?recursive=true&expand=false");
  EXPECT_EQ(hf::resolve_url(ep, "org/name", "abc", "sub dir/model-00001-of-00002.safetensors"),
            ep + "/org/name/resolve/abc/sub%20dir/model-00001-of-00002.safetensors");
}

TEST(HfEnv, EndpointFromEnvironment) {
  hf_test::ScopedEnv env;
  env.unset("HF_ENDPOINT");
  EXPECT_EQ(hf::endpoint_from_env(), "https://huggingface.co");
  env.set("HF_ENDPOINT", "http://127.0.0.1:9999//");
  EXPECT_EQ(hf::endpoint_from_env(), "http://127.0.0.1:9999");
  env.set("HF_ENDPOINT", "");
  EXPECT_EQ(hf::endpoint_from_env(), "https://huggingface.co");
}

TEST(HfEnv, TokenPrecedence) {
  hf_test::ScopedEnv env;
  auto dir = std::filesystem::temp_directory_path() / ("hf_token_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "token") << "  file-token\n"; }
  { std::ofstream(dir / "other") << "path-token\n"; }
  env.set("HF_HOME", dir.string());
  env.unset("HF_TOKEN_PATH");
  env.unset("HF_TOKEN");
  env.unset("HUGGING_FACE_HUB_TOKEN");
  EXPECT_EQ(hf::resolve_token(""), "file-token");
  env.set("HF_TOKEN_PATH", (dir / "other").string());
  EXPECT_EQ(hf::resolve_token(""), "path-token");
  env.set("HUGGING_FACE_HUB_TOKEN", "legacy-token");
  EXPECT_EQ(hf::resolve_token(""), "legacy-token");
  env.set("HF_TOKEN", "env-token");
  EXPECT_EQ(hf::resolve_token(""), "env-token");
  // A per-model (explicit) token wins over the process-wide one (OME reference section 4.3 is a defect).
  EXPECT_EQ(hf::resolve_token("model-token"), "model-token");
  env.set("HF_TOKEN", "");
  EXPECT_EQ(hf::resolve_token(""), "legacy-token");
  env.unset("HUGGING_FACE_HUB_TOKEN");
  env.unset("HF_TOKEN_PATH");
  env.set("HF_HOME", (dir / "missing").string());
  EXPECT_EQ(hf::resolve_token(""), "");
  std::filesystem::remove_all(dir);
}
