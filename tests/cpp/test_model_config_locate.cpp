#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/model_metadata.hpp"
#include "test_model_support.hpp"

using namespace modelagent;
using model_test::TempDir;
using model_test::write_file;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ModelConfigError& e) {
    return e.what();
  }
  return "<no ModelConfigError>";
}

}  // namespace

TEST(LocateConfig, RootConfigWins) {
  TempDir d;
  write_file(d / "config.json", "{}");
  write_file(d / "model/config.json", "{}");
  write_file(d / "model_index.json", "{}");
  auto loc = locate_model_config(d.path());
  EXPECT_EQ(loc.file, d / "config.json");
  EXPECT_FALSE(loc.diffusers);
}

TEST(LocateConfig, DiffusersIndexAtRootBeatsComponentConfigs) {
  TempDir d;
  write_file(d / "model_index.json", "{}");
  write_file(d / "text_encoder/config.json", "{}");
  write_file(d / "model/config.json", "{}");
  auto loc = locate_model_config(d.path());
  EXPECT_EQ(loc.file, d / "model_index.json");
  EXPECT_TRUE(loc.diffusers);
}

TEST(LocateConfig, KnownSubfoldersInReferenceOrder) {
  TempDir d;
  write_file(d / "model/config.json", "{}");
  write_file(d / "pytorch_model/config.json", "{}");
  write_file(d / "a/config.json", "{}");
  EXPECT_EQ(locate_model_config(d.path()).file, d / "pytorch_model/config.json");
  write_file(d / "safetensors/config.json", "{}");
  EXPECT_EQ(locate_model_config(d.path()).file, d / "safetensors/config.json");
}

TEST(LocateConfig, WalkPicksShallowestThenLexicographic) {
  TempDir d;
  write_file(d / "zz/config.json", "{}");
  write_file(d / "aa/deeper/config.json", "{}");
  write_file(d / "mm/config.json", "{}");
  EXPECT_EQ(locate_model_config(d.path()).file, d / "mm/config.json");
  write_file(d / "b/config.json", "{}");
  EXPECT_EQ(locate_model_config(d.path()).file, d / "b/config.json");
}

TEST(LocateConfig, WalkFindsDiffusersIndexShallowerThanComponents) {
  TempDir d;
  write_file(d / "sd15/model_index.json", "{}");
  write_file(d / "sd15/unet/config.json", "{}");
  auto loc = locate_model_config(d.path());
  EXPECT_EQ(loc.file, d / "sd15/model_index.json");
  EXPECT_TRUE(loc.diffusers);
}

TEST(LocateConfig, WalkIsBoundedInDepth) {
  ASSERT_EQ(ConfigWalkLimits{}.max_depth, 4);
  TempDir d;
  write_file(d / "1/2/3/4/config.json", "{}");
  EXPECT_EQ(locate_model_config(d.path()).file, d / "1/2/3/4/config.json");
  TempDir deep;
  write_file(deep / "1/2/3/4/5/config.json", "{}");
  EXPECT_NE(error_of([&] { locate_model_config(deep.path()); }).find("config.json not found in"), std::string::npos);
}

TEST(LocateConfig, WalkIsBoundedInEntries) {
  EXPECT_EQ(ConfigWalkLimits{}.max_entries, 20000u);
  TempDir d;
  // Directories are visited in name order: "a" (3 entries) is read before "b", so the limit of 4
  // entries (2 at the top, 3 in "a") stops the walk before b/config.json is seen.
  for (const char* f : {"a/f1", "a/f2", "a/f3"}) write_file(d / f, "");
  write_file(d / "b/config.json", "{}");
  std::string err = error_of([&] { locate_model_config(d.path(), ConfigWalkLimits{4, 4}); });
  EXPECT_EQ(err, "config.json not found in " + d.path().string() + " (search stopped after 4 directory entries)");
  EXPECT_EQ(locate_model_config(d.path(), ConfigWalkLimits{4, 6}).file, d / "b/config.json");
}

TEST(LocateConfig, WalkSkipsHiddenAndSymlinkedDirectories) {
  TempDir d;
  TempDir elsewhere;
  write_file(d / ".git/config.json", "{}");
  write_file(elsewhere / "config.json", "{}");
  fs::create_directory_symlink(elsewhere.path(), d / "link");
  EXPECT_NE(error_of([&] { locate_model_config(d.path()); }).find("config.json not found in"), std::string::npos);
}

TEST(LocateConfig, SymlinkedConfigFileIsUsed) {
  TempDir d;
  write_file(d / "blobs/abc", "{}");
  fs::create_symlink(d / "blobs/abc", d / "config.json");
  EXPECT_EQ(locate_model_config(d.path()).file, d / "config.json");
}

TEST(LocateConfig, AFileIsTakenAsTheConfigItself) {
  TempDir d;
  write_file(d / "llama.json", "{}");
  auto loc = locate_model_config(d / "llama.json");
  EXPECT_EQ(loc.file, d / "llama.json");
  EXPECT_FALSE(loc.diffusers);
}

TEST(LocateConfig, MissingConfigNamesTheDirectory) {
  TempDir d;
  write_file(d / "model.safetensors", "");
  EXPECT_EQ(error_of([&] { locate_model_config(d.path()); }), "config.json not found in " + d.path().string());
}

TEST(LocateConfig, MissingDirectory) {
  TempDir d;
  EXPECT_EQ(error_of([&] { locate_model_config(d / "nope"); }),
            "model directory " + (d / "nope").string() + " does not exist");
}

TEST(LocateConfig, EmptyPath) {
  EXPECT_EQ(error_of([&] { locate_model_config(""); }), "the model path is empty");
}

TEST(LoadConfig, ParsesAnObject) {
  TempDir d;
  write_file(d / "config.json", R"({"model_type": "llama", "eos_token_id": [1, 2]})");
  auto j = load_config_json(d / "config.json");
  EXPECT_EQ(j["model_type"], "llama");
}

TEST(LoadConfig, MalformedJsonNamesFileLineAndColumn) {
  TempDir d;
  // The stray "x" is on line 3, column 16 (byte offset 27).
  write_file(d / "config.json", "{\n  \"a\": 1,\n  \"model_type\" x \"llama\"\n}\n");
  std::string err = error_of([&] { load_config_json(d / "config.json"); });
  EXPECT_NE(err.find("malformed JSON in " + (d / "config.json").string()), std::string::npos) << err;
  EXPECT_NE(err.find("at line 3, column 16 (byte 27)"), std::string::npos) << err;
  EXPECT_EQ(err.find("[json.exception"), std::string::npos) << err;
}

TEST(LoadConfig, TruncatedJson) {
  TempDir d;
  write_file(d / "config.json", "{\"model_type\": \"llama\",");
  std::string err = error_of([&] { load_config_json(d / "config.json"); });
  EXPECT_NE(err.find("at line 1, column 24"), std::string::npos) << err;
}

TEST(LoadConfig, EmptyFile) {
  TempDir d;
  write_file(d / "config.json", "");
  std::string err = error_of([&] { load_config_json(d / "config.json"); });
  EXPECT_NE(err.find("malformed JSON in " + (d / "config.json").string() + " at line 1, column 1"), std::string::npos)
      << err;
}

TEST(LoadConfig, NonObjectTopLevel) {
  TempDir d;
  write_file(d / "config.json", "[1, 2]");
  EXPECT_EQ(error_of([&] { load_config_json(d / "config.json"); }),
            (d / "config.json").string() + " holds a JSON array, expected an object");
}

TEST(LoadConfig, InvalidUtf8IsAParseError) {
  TempDir d;
  write_file(d / "config.json", "{\"a\": \"\xff\"}");
  EXPECT_NE(error_of([&] { load_config_json(d / "config.json"); }).find("malformed JSON in"), std::string::npos);
}

TEST(LoadConfig, OversizedFileIsRejectedBeforeReading) {
  TempDir d;
  write_file(d / "config.json", "{}");
  fs::resize_file(d / "config.json", kMaxConfigJsonBytes + 1);
  EXPECT_NE(error_of([&] { load_config_json(d / "config.json"); }).find("accepted for a model configuration"),
            std::string::npos);
}
