// OME-compatible label keys and ConfigMap keys (reference section 2.5 / 2.6) and Kubernetes name checks.
// Expected hashes are the first 8 hex digits of SHA-256 computed independently (Python hashlib).

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "modelagent/naming.hpp"

using namespace modelagent;

namespace {
constexpr auto BM = ModelKind::BaseModel;
constexpr auto CBM = ModelKind::ClusterBaseModel;
std::string rep(size_t n, char c) { return std::string(n, c); }
}  // namespace

TEST(TruncateWithHash, FitsUnchanged) {
  EXPECT_EQ(truncate_with_hash("production-inference-namespace", 30), "production-inference-namespace");
  EXPECT_EQ(truncate_with_hash("", 0), "");
}

TEST(TruncateWithHash, HashThenTail) {
  // SHA-256("production-inference-namespace") starts 978f49c1.
  EXPECT_EQ(truncate_with_hash("production-inference-namespace", 10), "978f49c1-e");
  EXPECT_EQ(truncate_with_hash("production-inference-namespace", 29), "978f49c1--inference-namespace");
}

TEST(TruncateWithHash, BudgetOfNineOrLessGivesBareHash) {
  EXPECT_EQ(truncate_with_hash("production-inference-namespace", 9), "978f49c1");  // only 8 hex digits exist
  EXPECT_EQ(truncate_with_hash("production-inference-namespace", 8), "978f49c1");
  EXPECT_EQ(truncate_with_hash("production-inference-namespace", 1), "9");
  EXPECT_EQ(truncate_with_hash("production-inference-namespace", 0), "");
  EXPECT_EQ(truncate_with_hash("production-inference", 8), "ea4a9b32");
}

// ---- the worked examples of reference section 2.5 ----

TEST(NodeLabelKey, WorkedExamples) {
  EXPECT_EQ(node_label_key(CBM, "llama-3-1-8b-instruct"), "models.ome.io/clusterbasemodel.llama-3-1-8b-instruct");
  EXPECT_EQ(node_label_key(CBM, "meta-llama-3-1-405b-instruct-fp8-dynamic"),
            "models.ome.io/clusterbasemodel.d30d2100-5b-instruct-fp8-dynamic");
  EXPECT_EQ(node_label_key(BM, "llama-3-8b", "default"), "models.ome.io/default.basemodel.llama-3-8b");
  EXPECT_EQ(node_label_key(BM, "meta-llama-3-1-70b-instruct", "production-inference"),
            "models.ome.io/ea4a9b32.basemodel.meta-llama-3-1-70b-instruct");
}

// ---- boundaries: CBM name budget 32 ----

TEST(NodeLabelKey, ClusterBaseModelBudget) {
  EXPECT_EQ(node_label_key(CBM, "llama-3-1-8b-instruct-0123456789"),  // 32: fits
            "models.ome.io/clusterbasemodel.llama-3-1-8b-instruct-0123456789");
  EXPECT_EQ(node_label_key(CBM, "llama-3-1-8b-instruct-0123456789a"),  // 33: hash + last 23
            "models.ome.io/clusterbasemodel.9bd0de4f-8b-instruct-0123456789a");
  EXPECT_EQ(node_label_key(CBM, rep(32, 'm')), "models.ome.io/clusterbasemodel." + rep(32, 'm'));
}

// ---- boundaries: BM namespace + name budget 38 ----

TEST(NodeLabelKey, BaseModelExactlyAtBudget) {
  EXPECT_EQ(node_label_key(BM, rep(31, 'n'), "default"), "models.ome.io/default.basemodel." + rep(31, 'n'));
  // A long namespace is kept whole while the sum fits.
  EXPECT_EQ(node_label_key(BM, "qwen", rep(34, 'a')), "models.ome.io/" + rep(34, 'a') + ".basemodel.qwen");
}

TEST(NodeLabelKey, BaseModelOneOverWithShortNamespace) {
  // namespace <= 8 is kept; the name gets 38 - len(namespace).
  EXPECT_EQ(node_label_key(BM, rep(32, 'm'), "default"),
            "models.ome.io/default.basemodel.0c0524a7-" + rep(22, 'm'));
  // namespace of exactly 8: still kept, name budget 30.
  EXPECT_EQ(node_label_key(BM, "model-name-that-is-31-chars-xyz", "abcdefgh"),
            "models.ome.io/abcdefgh.basemodel.3cabf60a--that-is-31-chars-xyz");
}

TEST(NodeLabelKey, BaseModelOneOverWithLongNamespace) {
  // namespace of 9: hashed to a bare 8-hex string (the max - 9 <= 0 branch); name budget 30.
  EXPECT_EQ(node_label_key(BM, "model-name-that-is-30-chars-xy", "abcdefghi"),
            "models.ome.io/19cc02f2.basemodel.model-name-that-is-30-chars-xy");
  EXPECT_EQ(node_label_key(BM, "model-name-that-is-31-chars-xyz", "abcdefghi"),
            "models.ome.io/19cc02f2.basemodel.3cabf60a--that-is-31-chars-xyz");
  // A short name with a long namespace: only the namespace is hashed.
  EXPECT_EQ(node_label_key(BM, "qwen", "a-namespace-that-is-exactly-thirty-six"),
            "models.ome.io/ec7beed9.basemodel.qwen");
}

TEST(NodeLabelKey, ResultsAreValidLabelKeys) {
  for (const auto& key :
       {node_label_key(CBM, rep(200, 'x')), node_label_key(BM, rep(200, 'x'), rep(63, 'n')),
        node_label_key(BM, "meta-llama-3-1-70b-instruct", "production-inference"),
        node_label_key(BM, rep(31, 'n'), "default")}) {
    EXPECT_TRUE(is_valid_label_key(key)) << key << ": " << label_key_problem(key);
    EXPECT_LE(key.size() - kModelLabelDomain.size() - 1, kLabelNameBudget) << key;
  }
}

TEST(NodeLabelKey, ArgumentErrors) {
  EXPECT_THROW(node_label_key(BM, "llama"), std::invalid_argument);
  EXPECT_THROW(node_label_key(BM, "", "default"), std::invalid_argument);
  EXPECT_THROW(node_label_key(CBM, "llama", "default"), std::invalid_argument);
  EXPECT_THROW(configmap_key(BM, "llama"), std::invalid_argument);
  try {
    node_label_key(CBM, "llama", "default");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cluster-scoped"), std::string::npos) << e.what();
  }
}

// ---- ConfigMap keys: budget 253 ----

TEST(ConfigMapKey, ShortNames) {
  EXPECT_EQ(configmap_key(CBM, "llama-3-1-8b-instruct"), "clusterbasemodel.llama-3-1-8b-instruct");
  EXPECT_EQ(configmap_key(BM, "llama-3-1-8b", "default"), "default.basemodel.llama-3-1-8b");
  // Long enough to be truncated as a label, but not as a key.
  EXPECT_EQ(configmap_key(BM, "meta-llama-3-1-70b-instruct", "production-inference"),
            "production-inference.basemodel.meta-llama-3-1-70b-instruct");
}

TEST(ConfigMapKey, ClusterBaseModelBudget) {
  EXPECT_EQ(configmap_key(CBM, rep(236, 'c')), "clusterbasemodel." + rep(236, 'c'));
  EXPECT_EQ(configmap_key(CBM, rep(237, 'c')), "clusterbasemodel.1974f174-" + rep(227, 'c'));
}

TEST(ConfigMapKey, BaseModelBudget) {
  EXPECT_EQ(configmap_key(BM, rep(235, 'm'), "default"), "default.basemodel." + rep(235, 'm'));
  EXPECT_EQ(configmap_key(BM, rep(236, 'm'), "default"), "default.basemodel.289871bf-" + rep(226, 'm'));
  EXPECT_EQ(configmap_key(BM, rep(233, 'm'), "abcdefghi"), "abcdefghi.basemodel." + rep(233, 'm'));
  EXPECT_EQ(configmap_key(BM, rep(234, 'm'), "abcdefghi"), "19cc02f2.basemodel." + rep(234, 'm'));
  for (const auto& key : {configmap_key(CBM, rep(300, 'c')), configmap_key(BM, rep(300, 'm'), rep(63, 'n'))}) {
    EXPECT_EQ(key.size(), 253u);
    EXPECT_TRUE(is_valid_configmap_key(key)) << configmap_key_problem(key);
  }
}

TEST(ConfigMapKey, ParsesBackLikeTheController) {
  auto cbm = parse_configmap_key("clusterbasemodel.llama-3-1-8b-instruct");
  ASSERT_TRUE(cbm);
  EXPECT_EQ(cbm->kind, CBM);
  EXPECT_EQ(cbm->namespace_name, "");
  EXPECT_EQ(cbm->name, "llama-3-1-8b-instruct");

  auto bm = parse_configmap_key("default.basemodel.llama-3-1-8b");
  ASSERT_TRUE(bm);
  EXPECT_EQ(bm->kind, BM);
  EXPECT_EQ(bm->namespace_name, "default");
  EXPECT_EQ(bm->name, "llama-3-1-8b");

  // Split at the first ".basemodel.", as the controller does.
  auto nested = parse_configmap_key("ns.basemodel.a.basemodel.b");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->namespace_name, "ns");
  EXPECT_EQ(nested->name, "a.basemodel.b");

  EXPECT_FALSE(parse_configmap_key("something-else"));
  EXPECT_FALSE(parse_configmap_key("basemodel.x"));
}

TEST(ModelKindNames, ParseAndName) {
  EXPECT_EQ(parse_model_kind("BaseModel"), BM);
  EXPECT_EQ(parse_model_kind("ClusterBaseModel"), CBM);
  EXPECT_EQ(model_kind_name(BM), "BaseModel");
  EXPECT_EQ(model_kind_name(CBM), "ClusterBaseModel");
  EXPECT_THROW(parse_model_kind("basemodel"), std::invalid_argument);
  EXPECT_THROW(parse_model_kind("InferenceService"), std::invalid_argument);
}

TEST(NodeLabelValue, StatusesMapToValuesOrRemoval) {
  EXPECT_EQ(node_label_value("Ready"), "Ready");
  EXPECT_EQ(node_label_value("Updating"), "Updating");
  EXPECT_EQ(node_label_value("Failed"), "Failed");
  EXPECT_EQ(node_label_value("Deleted"), std::nullopt);
  EXPECT_THROW(node_label_value("ready"), std::invalid_argument);
  EXPECT_THROW(node_label_value(""), std::invalid_argument);
}

// ---- Kubernetes validation ----

TEST(LabelKeyValidation, QualifiedNames) {
  EXPECT_TRUE(is_valid_label_key("models.ome.io/clusterbasemodel.llama"));
  EXPECT_TRUE(is_valid_label_key("app"));
  EXPECT_TRUE(is_valid_label_key("node.kubernetes.io/instance-type"));
  EXPECT_TRUE(is_valid_label_key("a/" + rep(63, 'x')));
  EXPECT_TRUE(is_valid_label_key("A_b.C-d"));

  EXPECT_FALSE(is_valid_label_key(""));
  EXPECT_FALSE(is_valid_label_key("a/" + rep(64, 'x')));
  EXPECT_FALSE(is_valid_label_key("/name"));
  EXPECT_FALSE(is_valid_label_key("prefix/"));
  EXPECT_FALSE(is_valid_label_key("a/b/c"));
  EXPECT_FALSE(is_valid_label_key("Models.ome.io/x"));  // uppercase prefix
  EXPECT_FALSE(is_valid_label_key("models..io/x"));
  EXPECT_FALSE(is_valid_label_key("-name"));
  EXPECT_FALSE(is_valid_label_key("name_"));
  EXPECT_FALSE(is_valid_label_key("na me"));
  EXPECT_FALSE(is_valid_label_key(rep(254, 'a') + "/x"));
  EXPECT_NE(label_key_problem("a/b/c").find("more than one '/'"), std::string::npos);
  EXPECT_NE(label_key_problem("a/" + rep(64, 'x')).find("longer than 63"), std::string::npos);
}

TEST(LabelValueValidation, Values) {
  EXPECT_TRUE(is_valid_label_value(""));
  EXPECT_TRUE(is_valid_label_value("Ready"));
  EXPECT_TRUE(is_valid_label_value(rep(63, 'v')));
  EXPECT_TRUE(is_valid_label_value("a.b_c-d"));
  EXPECT_FALSE(is_valid_label_value(rep(64, 'v')));
  EXPECT_FALSE(is_valid_label_value("-ready"));
  EXPECT_FALSE(is_valid_label_value("ready."));
  EXPECT_FALSE(is_valid_label_value("a/b"));
  EXPECT_FALSE(is_valid_label_value("caf\xc3\xa9"));
}

TEST(ConfigMapKeyValidation, Keys) {
  EXPECT_TRUE(is_valid_configmap_key("default.basemodel.llama"));
  EXPECT_TRUE(is_valid_configmap_key("-_."));
  EXPECT_TRUE(is_valid_configmap_key(rep(253, 'k')));
  EXPECT_FALSE(is_valid_configmap_key(""));
  EXPECT_FALSE(is_valid_configmap_key(rep(254, 'k')));
  EXPECT_FALSE(is_valid_configmap_key("."));
  EXPECT_FALSE(is_valid_configmap_key(".."));
  EXPECT_FALSE(is_valid_configmap_key("..x"));
  EXPECT_FALSE(is_valid_configmap_key("a/b"));
  EXPECT_FALSE(is_valid_configmap_key("a b"));
}
