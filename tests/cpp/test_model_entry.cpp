// ConfigMap entry JSON: byte-identical Go encoding/json output, tolerant parsing, precise errors.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/model_entry.hpp"

using namespace modelagent;
using nlohmann::json;

namespace {

// The illustrative entry of reference section 2.6, as OME's agent writes it.
const std::string kIllustrative =
    R"({"name":"llama-3-1-8b","status":"Ready","config":{"modelType":"llama","modelArchitecture":"LlamaForCausalLM",)"
    R"("modelFramework":{"name":"transformers","version":"4.43.0.dev0"},"modelFormat":{"name":"safetensors",)"
    R"("version":"1.0.0"},"modelParameterSize":"8.03B","maxTokens":131072,"modelCapabilities":["CHAT"],)"
    R"("decodedModelConfiguration":{"architecture":"LlamaForCausalLM","context_length":131072,"has_vision":false,)"
    R"("model_size_bytes":16060522496,"model_type":"llama","parameter_count":"8.03B","torch_dtype":"bfloat16",)"
    R"("transformers_version":"4.43.0.dev0"}}})";

std::string error_for(const std::string& text, const std::string& key = "default.basemodel.m") {
  try {
    parse_model_entry(text, key);
    ADD_FAILURE() << "parsed: " << text;
  } catch (const ModelEntryError& e) {
    return e.what();
  }
  return {};
}

#define EXPECT_PARSE_ERROR(text, fragment)                                                              \
  do {                                                                                                  \
    std::string message_ = error_for(text);                                                             \
    EXPECT_NE(message_.find(fragment), std::string::npos) << "message for " << (text) << ": " << message_; \
  } while (0)

std::string go_string(const std::string& s) { return go_json(json(s)); }

}  // namespace

// ---- the illustrative entry ----

TEST(ModelEntryJson, IllustrativeEntryRoundTripsByteIdentically) {
  ModelEntry entry = parse_model_entry(kIllustrative, "default.basemodel.llama-3-1-8b");
  EXPECT_EQ(entry.name, "llama-3-1-8b");
  EXPECT_EQ(entry.status, "Ready");
  ASSERT_TRUE(entry.config);
  const ModelConfig& c = *entry.config;
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.model_architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_framework, (NameVersion{"transformers", "4.43.0.dev0"}));
  EXPECT_EQ(c.model_format, (NameVersion{"safetensors", "1.0.0"}));
  EXPECT_EQ(c.model_parameter_size, "8.03B");
  EXPECT_EQ(c.max_tokens, 131072);
  EXPECT_EQ(c.model_capabilities, std::vector<std::string>{"CHAT"});
  EXPECT_EQ(c.decoded_model_configuration["model_size_bytes"], 16060522496LL);
  EXPECT_EQ(c.quantization, "");
  EXPECT_TRUE(c.extra.empty());
  EXPECT_FALSE(entry.progress);
  EXPECT_EQ(serialize_model_entry(entry), kIllustrative);
}

TEST(ModelEntryJson, BuiltEntrySerialisesLikeGo) {
  ModelEntry entry;
  entry.name = "llama-3-1-8b";
  entry.status = std::string(model_status::kReady);
  ModelConfig c;
  c.model_type = "llama";
  c.model_architecture = "LlamaForCausalLM";
  c.model_framework = NameVersion{"transformers", "4.43.0.dev0"};
  c.model_format = NameVersion{"safetensors", "1.0.0"};
  c.model_parameter_size = "8.03B";
  c.max_tokens = 131072;
  c.model_capabilities = {"CHAT"};
  // Inserted out of order: a Go map is written with sorted keys.
  c.decoded_model_configuration = json::object();
  c.decoded_model_configuration["transformers_version"] = "4.43.0.dev0";
  c.decoded_model_configuration["torch_dtype"] = "bfloat16";
  c.decoded_model_configuration["parameter_count"] = "8.03B";
  c.decoded_model_configuration["model_type"] = "llama";
  c.decoded_model_configuration["model_size_bytes"] = 16060522496LL;
  c.decoded_model_configuration["has_vision"] = false;
  c.decoded_model_configuration["context_length"] = 131072;
  c.decoded_model_configuration["architecture"] = "LlamaForCausalLM";
  entry.config = c;
  EXPECT_EQ(serialize_model_entry(entry), kIllustrative);
}

// ---- omitempty ----

TEST(ModelEntryJson, StatusOnlyEntry) {
  ModelEntry entry{"m", "Updating", std::nullopt, std::nullopt, json::object()};
  EXPECT_EQ(serialize_model_entry(entry), R"({"name":"m","status":"Updating"})");
  entry.config = ModelConfig{};
  EXPECT_EQ(serialize_model_entry(entry), R"({"name":"m","status":"Updating","config":{}})");
}

TEST(ModelEntryJson, EmptyFieldsAreOmittedAndVersionIsOptional) {
  ModelConfig c;
  c.model_framework = NameVersion{"transformers", std::nullopt};
  c.max_tokens = 0;
  c.model_capabilities = {};
  c.quantization = "fp8";
  ModelEntry entry{"bert", "Ready", c, std::nullopt, json::object()};
  EXPECT_EQ(serialize_model_entry(entry),
            R"({"name":"bert","status":"Ready","config":{"modelFramework":{"name":"transformers"},)"
            R"("quantization":"fp8"}})");
  // Empty name and status are still written: Go has no omitempty on them.
  EXPECT_EQ(serialize_model_entry(ModelEntry{}), R"({"name":"","status":""})");
}

TEST(ModelEntryJson, NegativeMaxTokensIsWritten) {
  ModelConfig c;
  c.max_tokens = -1;
  EXPECT_EQ(serialize_model_entry(ModelEntry{"m", "Ready", c, std::nullopt, json::object()}),
            R"({"name":"m","status":"Ready","config":{"maxTokens":-1}})");
}

// ---- Go string escaping ----

TEST(GoJson, HtmlCharactersAreEscaped) {
  EXPECT_EQ(go_string("<a href=\"x\">&</a>"), R"("\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e")");
}

TEST(GoJson, ControlCharacters) {
  EXPECT_EQ(go_string("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(go_string(std::string("\x00\x01\x1b\x1f", 4)), R"("\u0000\u0001\u001b\u001f")");
  EXPECT_EQ(go_string("\x7f"), "\"\x7f\"");  // DEL is not escaped
  EXPECT_EQ(go_string("back\\slash \"quoted\" / solidus"), R"("back\\slash \"quoted\" / solidus")");
}

TEST(GoJson, UnicodeKeptExceptLineSeparators) {
  EXPECT_EQ(go_string("caf\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\xa6\x99"), "\"caf\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\xa6\x99\"");
  EXPECT_EQ(go_string("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c"), R"("a\u2028b\u2029c")");
  EXPECT_EQ(go_string("\xe2\x80\xaa"), "\"\xe2\x80\xaa\"");  // U+202A is not special
}

TEST(GoJson, InvalidUtf8BecomesReplacementCharacterPerByte) {
  EXPECT_EQ(go_string("a\xff" "b"), R"("a\ufffdb")");
  EXPECT_EQ(go_string("\xc0\xaf"), R"("\ufffd\ufffd")");           // overlong
  EXPECT_EQ(go_string("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // surrogate
  EXPECT_EQ(go_string("\xe2\x82"), R"("\ufffd\ufffd")");           // truncated
  EXPECT_EQ(go_string("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // past U+10FFFF
}

TEST(GoJson, MapKeysSortedBytewiseAndEscaped) {
  json m = json::object();
  m["b"] = 1;
  m["a"] = json::object({{"z", 1}, {"Z", 2}, {"\xc3\xa9", 3}, {"_", 4}});
  m["B"] = nullptr;
  m["<k>"] = json::array({true, false, nullptr, "s"});
  EXPECT_EQ(go_json(m), R"({"\u003ck\u003e":[true,false,null,"s"],"B":null,"a":{"Z":2,"_":4,"z":1,)"
                        "\"\xc3\xa9\":3},\"b\":1}");
}

// ---- Go float64 formatting ----

TEST(GoJson, FloatFormatting) {
  const std::pair<double, const char*> cases[] = {
      {1.0, "1"},
      {-2.0, "-2"},
      {0.5, "0.5"},
      {0.1 + 0.2, "0.30000000000000004"},
      {3.14, "3.14"},
      {123456789.125, "123456789.125"},
      {16060522496.0, "16060522496"},
      {1e20, "100000000000000000000"},
      {9.999999999999999e20, "999999999999999900000"},
      {12345678901234567890.0, "12345678901234567000"},
      {1e21, "1e+21"},
      {1.5e300, "1.5e+300"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {1e-6, "0.000001"},
      {0.000001234, "0.000001234"},
      {1e-7, "1e-7"},
      {-1.5e-7, "-1.5e-7"},
      {1e-10, "1e-10"},
      {2.5e-100, "2.5e-100"},
      {5e-324, "5e-324"},
      {0.0, "0"},
      {-0.0, "-0"},
  };
  for (const auto& [value, text] : cases) EXPECT_EQ(go_format_float(value), text) << value;
  EXPECT_EQ(go_json(json(1.0)), "1");
  EXPECT_EQ(go_json(json::array({1.0, 2.5, 1e-7})), "[1,2.5,1e-7]");
}

TEST(GoJson, NonFiniteFloatsAreErrors) {
  EXPECT_THROW(go_format_float(std::numeric_limits<double>::quiet_NaN()), ModelEntryError);
  EXPECT_THROW(go_format_float(std::numeric_limits<double>::infinity()), ModelEntryError);
  EXPECT_THROW(go_format_float(-std::numeric_limits<double>::infinity()), ModelEntryError);
}

TEST(GoJson, IntegersAreExact) {
  EXPECT_EQ(go_json(json(int64_t{-9007199254740993})), "-9007199254740993");
  EXPECT_EQ(go_json(json(uint64_t{18446744073709551615ULL})), "18446744073709551615");
}

TEST(ModelEntryJson, DecodedFloatsAreRewrittenAsGoWouldAfterDecoding) {
  // Go decodes the map into float64, so 1.0 and 1e3 come back as 1 and 1000.
  std::string text = R"({"name":"m","status":"Ready","config":{"decodedModelConfiguration":)"
                     R"({"a":1.0,"b":1e3,"c":0.1,"d":1E-7,"e":[1.50,{"y":2,"x":1}]}}})";
  EXPECT_EQ(serialize_model_entry(parse_model_entry(text)),
            R"({"name":"m","status":"Ready","config":{"decodedModelConfiguration":)"
            R"({"a":1,"b":1000,"c":0.1,"d":1e-7,"e":[1.5,{"x":1,"y":2}]}}})");
}

// ---- progress ----

TEST(ModelEntryJson, ProgressObject) {
  ModelEntry entry{"m", "Updating", std::nullopt, ModelProgress{}, json::object()};
  ModelProgress& p = *entry.progress;
  p.phase = "Downloading";
  p.total_bytes = 16060522496ULL;
  p.completed_bytes = 1073741824ULL;
  p.total_files = 4;
  p.completed_files = 1;
  p.speed_bytes_per_sec = 104857600.5;
  p.last_updated = "2024-05-01T12:00:00Z";
  std::string text = serialize_model_entry(entry);
  EXPECT_EQ(text,
            R"({"name":"m","status":"Updating","progress":{"phase":"Downloading","totalBytes":16060522496,)"
            R"("completedBytes":1073741824,"totalFiles":4,"completedFiles":1,"speedBytesPerSec":104857600.5,)"
            R"("lastUpdated":"2024-05-01T12:00:00Z"}})");
  ModelEntry back = parse_model_entry(text);
  ASSERT_TRUE(back.progress);
  EXPECT_EQ(back.progress->total_bytes, 16060522496ULL);
  EXPECT_EQ(back.progress->completed_files, 1u);
  EXPECT_DOUBLE_EQ(back.progress->speed_bytes_per_sec, 104857600.5);
  EXPECT_EQ(serialize_model_entry(back), text);
}

TEST(ModelEntryJson, ProgressAfterConfig) {
  ModelEntry entry{"m", "Updating", ModelConfig{}, ModelProgress{}, json::object()};
  EXPECT_EQ(serialize_model_entry(entry),
            R"({"name":"m","status":"Updating","config":{},"progress":{"phase":"","totalBytes":0,)"
            R"("completedBytes":0,"totalFiles":0,"completedFiles":0,"speedBytesPerSec":0,"lastUpdated":""}})");
}

// ---- tolerant parsing ----

TEST(ModelEntryParse, UnknownFieldsArePreservedAfterKnownOnes) {
  std::string text =
      R"({"zeta":{"k":[1,2]},"status":"Ready","alpha":"x","name":"m",)"
      R"("config":{"artifact":{"sha":"abc","parentPath":null},"modelType":"llama","apiCapabilities":["A"]}})";
  ModelEntry entry = parse_model_entry(text);
  EXPECT_EQ(entry.extra.size(), 2u);
  EXPECT_EQ(entry.extra["alpha"], "x");
  ASSERT_TRUE(entry.config);
  EXPECT_EQ(entry.config->extra.size(), 2u);
  EXPECT_EQ(serialize_model_entry(entry),
            R"({"name":"m","status":"Ready","config":{"modelType":"llama","apiCapabilities":["A"],)"
            R"("artifact":{"parentPath":null,"sha":"abc"}},"alpha":"x","zeta":{"k":[1,2]}})");
}

TEST(ModelEntryParse, NullsMeanAbsent) {
  std::string text =
      R"({"name":"m","status":"Failed","config":{"modelType":null,"modelFramework":null,"maxTokens":null,)"
      R"("modelCapabilities":null,"decodedModelConfiguration":null},"progress":null})";
  ModelEntry entry = parse_model_entry(text);
  ASSERT_TRUE(entry.config);
  EXPECT_EQ(entry.config->model_type, "");
  EXPECT_FALSE(entry.config->model_framework);
  EXPECT_EQ(entry.config->max_tokens, 0);
  EXPECT_FALSE(entry.progress);
  EXPECT_EQ(serialize_model_entry(entry), R"({"name":"m","status":"Failed","config":{}})");
  EXPECT_FALSE(parse_model_entry(R"({"name":"m","status":"Ready","config":null})").config);
}

TEST(ModelEntryParse, FrameworkMapKeepsOtherKeysInMapOrder) {
  ModelEntry entry = parse_model_entry(
      R"({"name":"m","status":"Ready","config":{"modelFramework":{"version":"1","name":"x","build":"b7"}}})");
  EXPECT_EQ(entry.config->model_framework->extra.at("build"), "b7");
  EXPECT_EQ(serialize_model_entry(entry),
            R"({"name":"m","status":"Ready","config":{"modelFramework":{"build":"b7","name":"x","version":"1"}}})");
}

TEST(ModelEntryParse, EmptyFrameworkMapMeansAbsent) {
  ModelEntry entry = parse_model_entry(R"({"name":"m","status":"Ready","config":{"modelFormat":{}}})");
  EXPECT_FALSE(entry.config->model_format);
}

TEST(ModelEntryParse, UnknownStatusIsKeptVerbatim) {
  ModelEntry entry = parse_model_entry(R"({"name":"m","status":"Pending"})");
  EXPECT_EQ(entry.status, "Pending");
  EXPECT_FALSE(is_known_model_status(entry.status));
  EXPECT_EQ(serialize_model_entry(entry), R"({"name":"m","status":"Pending"})");
}

TEST(ModelEntryParse, StatusConstants) {
  EXPECT_EQ(model_status::kReady, "Ready");
  EXPECT_EQ(model_status::kUpdating, "Updating");
  EXPECT_EQ(model_status::kFailed, "Failed");
  EXPECT_EQ(model_status::kDeleted, "Deleted");
  for (auto s : {"Ready", "Updating", "Failed", "Deleted"}) EXPECT_TRUE(is_known_model_status(s)) << s;
  EXPECT_FALSE(is_known_model_status("ready"));
}

TEST(ModelEntryParse, UnicodeEscapesAreDecodedAndReEscapedAsGoDoes) {
  ModelEntry entry = parse_model_entry(R"({"name":"a\u003cb\u00e9\u2028","status":"Ready"})");
  EXPECT_EQ(entry.name, "a<b\xc3\xa9\xe2\x80\xa8");
  EXPECT_EQ(serialize_model_entry(entry), "{\"name\":\"a\\u003cb\xc3\xa9\\u2028\",\"status\":\"Ready\"}");
}

// ---- errors name the key and the field ----

TEST(ModelEntryParse, InvalidJsonNamesKeyAndPosition) {
  std::string message = error_for(R"({"name":"m",)");
  EXPECT_NE(message.find("ConfigMap entry 'default.basemodel.m'"), std::string::npos) << message;
  EXPECT_NE(message.find("invalid JSON"), std::string::npos) << message;
  EXPECT_NE(message.find("column"), std::string::npos) << message;
  EXPECT_EQ(message.find("[json.exception"), std::string::npos) << message;
  EXPECT_PARSE_ERROR("", "invalid JSON");
  EXPECT_PARSE_ERROR("{\"name\":\"\xff\",\"status\":\"Ready\"}", "invalid JSON");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready"} trailing)", "invalid JSON");
  try {
    parse_model_entry("nope");
  } catch (const ModelEntryError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("ConfigMap entry: invalid JSON", 0), 0u) << e.what();
  }
}

TEST(ModelEntryParse, WrongShapesAndTypes) {
  EXPECT_PARSE_ERROR("[]", "expected a JSON object, got array");
  EXPECT_PARSE_ERROR(R"("Ready")", "expected a JSON object, got string");
  EXPECT_PARSE_ERROR(R"({"status":"Ready"})", "missing field 'name'");
  EXPECT_PARSE_ERROR(R"({"name":"m"})", "missing field 'status'");
  EXPECT_PARSE_ERROR(R"({"name":null,"status":"Ready"})", "missing field 'name'");
  EXPECT_PARSE_ERROR(R"({"name":1,"status":"Ready"})", "field 'name' must be a string, got number");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":true})", "field 'status' must be a string, got boolean");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":"x"})", "field 'config' must be an object");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"modelType":7}})", "field 'config.modelType'");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"modelFramework":"transformers"}})",
                     "field 'config.modelFramework' must be an object");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"modelFormat":{"name":"st","version":1}}})",
                     "field 'config.modelFormat.version' must be a string");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"modelCapabilities":"CHAT"}})",
                     "field 'config.modelCapabilities' must be an array of strings");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"modelCapabilities":["CHAT",1]}})",
                     "field 'config.modelCapabilities[1]' must be a string");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"decodedModelConfiguration":[1]}})",
                     "field 'config.decodedModelConfiguration' must be an object");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","progress":[]})", "field 'progress' must be an object");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","progress":{"totalBytes":-1}})",
                     "field 'progress.totalBytes' must be an integer between 0 and 18446744073709551615, got -1");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","progress":{"totalFiles":4294967296}})",
                     "field 'progress.totalFiles'");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","progress":{"speedBytesPerSec":"fast"}})",
                     "field 'progress.speedBytesPerSec' must be a number");
}

TEST(ModelEntryParse, MaxTokensIsAnInt32) {
  EXPECT_EQ(parse_model_entry(R"({"name":"m","status":"Ready","config":{"maxTokens":2147483647}})").config->max_tokens,
            2147483647);
  EXPECT_EQ(parse_model_entry(R"({"name":"m","status":"Ready","config":{"maxTokens":-2147483648}})").config->max_tokens,
            -2147483647 - 1);
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"maxTokens":2147483648}})",
                     "field 'config.maxTokens' must be an integer between -2147483648 and 2147483647, got 2147483648");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"maxTokens":-2147483649}})", "got -2147483649");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"maxTokens":4096.5}})", "non-integer number 4096.5");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"maxTokens":4096.0}})", "non-integer number");
  EXPECT_PARSE_ERROR(R"({"name":"m","status":"Ready","config":{"maxTokens":"4096"}})", "got string");
}

TEST(ModelEntryParse, NonFiniteFloatCannotBeSerialised) {
  ModelConfig c;
  c.decoded_model_configuration["x"] = std::nan("");
  EXPECT_THROW(serialize_model_entry(ModelEntry{"m", "Ready", c, std::nullopt, json::object()}), ModelEntryError);
}

TEST(Rfc3339, UtcSeconds) {
  using namespace std::chrono;
  EXPECT_EQ(format_rfc3339(system_clock::time_point{seconds{1714564800}}), "2024-05-01T12:00:00Z");
  EXPECT_EQ(format_rfc3339(system_clock::time_point{seconds{0} + milliseconds{999}}), "1970-01-01T00:00:00Z");
}
