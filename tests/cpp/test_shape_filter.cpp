#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "modelagent/shape_filter.hpp"

using namespace modelagent;

namespace {

std::vector<std::string> dropped_paths(const ShapeFilterResult& r) {
  std::vector<std::string> out;
  for (const auto& d : r.dropped) out.push_back(d.first);
  return out;
}

const std::vector<std::string> kKnown = known_shape_aliases(default_instance_type_table());

}  // namespace

TEST(ShapeTable, DefaultTableIsOmes) {
  const auto& t = default_instance_type_table();
  EXPECT_EQ(t.size(), 11u);
  EXPECT_EQ(shape_alias("BM.GPU.A10.4", t), "A10");
  EXPECT_EQ(shape_alias("BM.GPU.A100-v2.8", t), "A100-80G");
  EXPECT_EQ(shape_alias("BM.GPU4.8", t), "A100-40G");
  EXPECT_EQ(shape_alias("BM.GPU.B4.8", t), "A100-40G");
  for (const char* h100 : {"BM.GPU.H100.8", "p5.48xlarge", "Standard_ND96isr_H100_v5", "a3-highgpu-8g",
                           "gd-8xh100ib-i128"}) {
    EXPECT_EQ(shape_alias(h100, t), "H100") << h100;
  }
  EXPECT_EQ(shape_alias("gd-8xh200ib-i128", t), "H200");
  EXPECT_EQ(shape_alias("gd-8xl40-i128", t), "L40");
  EXPECT_EQ(known_shape_aliases(t), (std::vector<std::string>{"A10", "A100-40G", "A100-80G", "H100", "H200", "L40"}));
}

TEST(ShapeTable, UnknownInstanceTypeIsItsOwnAlias) {
  EXPECT_EQ(shape_alias("BM.GPU.MI300X.8", default_instance_type_table()), "BM.GPU.MI300X.8");
  EXPECT_EQ(shape_alias("", default_instance_type_table()), "");
}

TEST(ShapeTable, ExtensionAddsAndOverridesDefaults) {
  auto ext = parse_instance_type_map(R"({"BM.GPU.H100.8":"H100-SXM","BM.GPU.GB200.4":"GB200"})", "INSTANCE_TYPE_MAP");
  auto t = merge_instance_type_table(ext);
  EXPECT_EQ(shape_alias("BM.GPU.H100.8", t), "H100-SXM");
  EXPECT_EQ(shape_alias("p5.48xlarge", t), "H100");  // other defaults stay
  EXPECT_EQ(shape_alias("BM.GPU.GB200.4", t), "GB200");
  auto known = known_shape_aliases(t);
  EXPECT_NE(std::find(known.begin(), known.end(), "GB200"), known.end());
  EXPECT_NE(std::find(known.begin(), known.end(), "H100-SXM"), known.end());
  EXPECT_EQ(default_instance_type_table().at("BM.GPU.H100.8"), "H100");  // defaults not modified
}

TEST(ShapeTable, MalformedMapsNameTheirOrigin) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      parse_instance_type_map(text, "/etc/model-agent/instance-types.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const std::invalid_argument& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("/etc/model-agent/instance-types.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  expect_error("{\"a\": ", "not valid JSON");
  expect_error("[\"H100\"]", "must be a JSON object");
  expect_error(R"({"BM.GPU.X": 3})", "\"BM.GPU.X\" must be a string");
  expect_error(R"({"BM.GPU.X": ""})", "non-empty directory name");
  expect_error(R"({"BM.GPU.X": "a/b"})", "non-empty directory name");
  expect_error(R"({"": "H100"})", "instance type is empty");
  EXPECT_TRUE(parse_instance_type_map("{}", "x").empty());
}

TEST(ShapeFilter, KeepsOwnShapeAndAgnosticFilesDropsOtherShapes) {
  std::vector<std::string> paths = {
      "config.json",         "tokenizer.json",        "H100/rank0.engine", "H100/config.json",
      "A100-80G/rank0.engine", "L40/rank0.engine",    "docs/README.md",
  };
  auto r = filter_by_shape(paths, "H100", kKnown);
  EXPECT_EQ(r.kept, (std::vector<std::string>{"config.json", "tokenizer.json", "H100/rank0.engine", "H100/config.json",
                                              "docs/README.md"}));
  EXPECT_EQ(dropped_paths(r), (std::vector<std::string>{"A100-80G/rank0.engine", "L40/rank0.engine"}));
  EXPECT_EQ(r.dropped[0].second, "under shape directory A100-80G/, this node is H100");
  EXPECT_EQ(r.shape_matches, 2u);
  EXPECT_EQ(r.other_shapes, (std::vector<std::string>{"A100-80G", "L40"}));
}

TEST(ShapeFilter, MatchesWholeSegmentsNotSubstrings) {
  std::vector<std::string> paths = {"H1000/a.engine", "xH100/b.engine", "H100x/c.engine", "engines/H100/d.engine",
                                    "H100", "notes/H100.txt"};
  auto r = filter_by_shape(paths, "H100", kKnown);
  // H1000/, xH100/, H100x/ are no shape directories (unknown names), so they count as shape-agnostic; a file
  // named H100 is not a directory.
  EXPECT_EQ(r.kept, paths);
  EXPECT_EQ(r.shape_matches, 1u);
  EXPECT_TRUE(r.dropped.empty());

  auto a100 = filter_by_shape(paths, "A100-80G", kKnown);
  EXPECT_EQ(dropped_paths(a100), (std::vector<std::string>{"engines/H100/d.engine"}));
  EXPECT_EQ(a100.shape_matches, 0u);
}

TEST(ShapeFilter, CaseSensitiveLikeOme) {
  auto r = filter_by_shape({"h100/a.engine", "H100/b.engine"}, "H100", kKnown);
  EXPECT_EQ(r.kept, (std::vector<std::string>{"h100/a.engine", "H100/b.engine"}));
  EXPECT_EQ(r.shape_matches, 1u);
}

TEST(ShapeFilter, OutermostShapeSegmentDecides) {
  auto r = filter_by_shape({"A100-80G/H100/x.engine", "H100/A100-80G/y.engine"}, "H100", kKnown);
  EXPECT_EQ(r.kept, (std::vector<std::string>{"H100/A100-80G/y.engine"}));
  EXPECT_EQ(dropped_paths(r), (std::vector<std::string>{"A100-80G/H100/x.engine"}));
}

TEST(ShapeFilter, UnknownInstanceTypeAliasStillSelectsItsDirectory) {
  // A node whose type is not in the table uses the raw type as its alias; its directory is kept even though
  // the table does not know it, and the known shapes are dropped.
  auto r = filter_by_shape({"BM.GPU.MI300X.8/r.engine", "H100/r.engine", "tokenizer.json"}, "BM.GPU.MI300X.8", kKnown);
  EXPECT_EQ(r.kept, (std::vector<std::string>{"BM.GPU.MI300X.8/r.engine", "tokenizer.json"}));
  EXPECT_EQ(r.shape_matches, 1u);
  EXPECT_EQ(r.other_shapes, (std::vector<std::string>{"H100"}));
}

TEST(ShapeFilter, ExtensionAliasesAreKnownShapes) {
  auto table = merge_instance_type_table(parse_instance_type_map(R"({"BM.GPU.GB200.4":"GB200"})", "env"));
  auto known = known_shape_aliases(table);
  auto with_ext = filter_by_shape({"GB200/r.engine", "H100/r.engine"}, "H100", known);
  EXPECT_EQ(dropped_paths(with_ext), (std::vector<std::string>{"GB200/r.engine"}));
  auto without = filter_by_shape({"GB200/r.engine", "H100/r.engine"}, "H100", kKnown);
  EXPECT_TRUE(without.dropped.empty());  // GB200/ is not a shape without the extension
}

TEST(ShapeFilter, ZeroMatchesIsReported) {
  auto r = filter_by_shape({"A100-80G/r.engine", "L40/r.engine", "config.json"}, "H100", kKnown);
  EXPECT_EQ(r.shape_matches, 0u);
  EXPECT_EQ(r.kept, (std::vector<std::string>{"config.json"}));
  EXPECT_EQ(r.other_shapes, (std::vector<std::string>{"A100-80G", "L40"}));
}

TEST(ShapeFilter, EmptyAliasDropsEveryShapedFile) {
  auto r = filter_by_shape({"H100/r.engine", "config.json"}, "", kKnown);
  EXPECT_EQ(r.kept, (std::vector<std::string>{"config.json"}));
  ASSERT_EQ(r.dropped.size(), 1u);
  EXPECT_EQ(r.dropped[0].second, "under shape directory H100/, this node has no shape");
  EXPECT_EQ(r.shape_matches, 0u);
}
