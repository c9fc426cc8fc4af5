#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "modelagent/glob_match.hpp"

using modelagent::glob_match;

TEST(GlobMatch, StarStaysInsideOneSegment) {
  EXPECT_TRUE(glob_match("*.json", "config.json"));
  EXPECT_FALSE(glob_match("*.json", "sub/config.json"));
  EXPECT_TRUE(glob_match("sub/*.json", "sub/config.json"));
  EXPECT_FALSE(glob_match("sub/*.json", "sub/deeper/config.json"));
  EXPECT_TRUE(glob_match("model-*-of-*.safetensors", "model-00001-of-00002.safetensors"));
  EXPECT_TRUE(glob_match("*", "README.md"));
  EXPECT_FALSE(glob_match("*", "a/README.md"));
  EXPECT_TRUE(glob_match("*", ""));
}

TEST(GlobMatch, QuestionMarkIsOneCharacterButNotSlash) {
  EXPECT_TRUE(glob_match("model-0000?.bin", "model-00001.bin"));
  EXPECT_FALSE(glob_match("model-0000?.bin", "model-000001.bin"));
  EXPECT_FALSE(glob_match("a?b", "a/b"));
  EXPECT_FALSE(glob_match("?", ""));
}

TEST(GlobMatch, DoubleStarCrossesDirectories) {
  EXPECT_TRUE(glob_match("**", "a/b/c.txt"));
  EXPECT_TRUE(glob_match("**", "top.txt"));
  EXPECT_TRUE(glob_match("**/*.bin", "pytorch_model.bin"));
  EXPECT_TRUE(glob_match("**/*.bin", "a/b/pytorch_model.bin"));
  EXPECT_FALSE(glob_match("**/*.bin", "a/b/pytorch_model.bin.json"));
  EXPECT_TRUE(glob_match("original/**", "original/consolidated.00.pth"));
  EXPECT_TRUE(glob_match("original/**", "original/sub/params.json"));
  EXPECT_FALSE(glob_match("original/**", "originals/params.json"));
  EXPECT_FALSE(glob_match("original/**", "x/original/params.json"));
  EXPECT_TRUE(glob_match("a/**/z", "a/z"));
  EXPECT_TRUE(glob_match("a/**/z", "a/b/c/z"));
  EXPECT_FALSE(glob_match("a/**/z", "a/bz"));
  // "**" inside a segment is a star that may cross '/'.
  EXPECT_TRUE(glob_match("a**z", "a/b/z"));
  EXPECT_TRUE(glob_match("**.safetensors", "unet/model.safetensors"));
}

TEST(GlobMatch, CharacterClasses) {
  EXPECT_TRUE(glob_match("shard-[0-9].bin", "shard-7.bin"));
  EXPECT_FALSE(glob_match("shard-[0-9].bin", "shard-x.bin"));
  EXPECT_TRUE(glob_match("shard-[!0-9].bin", "shard-x.bin"));
  EXPECT_TRUE(glob_match("shard-[^0-9].bin", "shard-x.bin"));
  EXPECT_FALSE(glob_match("shard-[!0-9].bin", "shard-3.bin"));
  EXPECT_TRUE(glob_match("[]a]", "]"));
  EXPECT_TRUE(glob_match("[a-]", "-"));
  EXPECT_FALSE(glob_match("a[!x]b", "a/b"));  // a class never matches '/'
  EXPECT_TRUE(glob_match("[ab][cd]", "bd"));
}

TEST(GlobMatch, EscapesAreLiteral) {
  EXPECT_TRUE(glob_match("weird\\*name", "weird*name"));
  EXPECT_FALSE(glob_match("weird\\*name", "weirdXname"));
  EXPECT_TRUE(glob_match("q\\?", "q?"));
  EXPECT_FALSE(glob_match("q\\?", "qa"));
}

TEST(GlobMatch, MatchesWholePathOnly) {
  EXPECT_FALSE(glob_match("config", "config.json"));
  EXPECT_FALSE(glob_match("json", "config.json"));  // no substring matching (OME quirk)
  EXPECT_TRUE(glob_match("config.json", "config.json"));
}

TEST(GlobMatch, MalformedPatternsAreErrorsNamingThePattern) {
  for (std::string bad : {"[abc", "x\\", "[z-a]", "[!"}) {
    try {
      glob_match(bad, "abc");
      ADD_FAILURE() << "no error for " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
    EXPECT_THROW(modelagent::validate_glob(bad), std::invalid_argument);
  }
  EXPECT_NO_THROW(modelagent::validate_glob("**/*.[bp]in"));
}

TEST(GlobMatch, PathologicalPatternStaysPolynomial) {
  std::string path(4000, 'a');
  std::string pattern;
  for (int i = 0; i < 40; ++i) pattern += "*a";
  pattern += "b";
  EXPECT_FALSE(glob_match(pattern, path));
  EXPECT_TRUE(glob_match(pattern.substr(0, pattern.size() - 1), path));
}

TEST(GlobMatch, AnyOfSeveralPatterns) {
  std::vector<std::string> patterns = {"*.json", "**/*.safetensors"};
  EXPECT_TRUE(modelagent::glob_match_any(patterns, "config.json"));
  EXPECT_TRUE(modelagent::glob_match_any(patterns, "unet/model.safetensors"));
  EXPECT_FALSE(modelagent::glob_match_any(patterns, "unet/config.json"));
  EXPECT_FALSE(modelagent::glob_match_any({}, "anything"));
}
