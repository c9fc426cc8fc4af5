// Safetensors header reading: valid layouts, every hostile-header rejection, bounded reads.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modelagent/errors.hpp"
#include "modelagent/safetensors.hpp"
#include "support/safetensors_writer.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using modelagent::dtype_bits;
using modelagent::parse_safetensors_header;
using modelagent::read_safetensors_header;
using modelagent::SafetensorsError;
using ordered_json = nlohmann::ordered_json;

namespace {

using testsupport::expect_error;
using testsupport::make_header;
using testsupport::Spec;
using testsupport::TempDir;
using testsupport::write_file;
using testsupport::write_raw;

void expect_parse_error(const std::string& json, uint64_t data_size, const std::vector<std::string>& fragments) {
  auto with_label = fragments;
  with_label.insert(with_label.begin(), "shard.safetensors");
  expect_error([&] { parse_safetensors_header(json, data_size, "shard.safetensors"); }, with_label);
}

// The SafetensorsError message for a header, or "(no error)".
std::string error_of(const std::string& json, uint64_t data_size) {
  try {
    parse_safetensors_header(json, data_size, "f");
  } catch (const SafetensorsError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string tensor(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                   uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

}  // namespace

TEST(DtypeBits, EveryKnownDtype) {
  const std::vector<std::pair<std::string, unsigned>> table = {
      {"F64", 64},     {"F32", 32},         {"F16", 16},         {"BF16", 16},    {"I64", 64},    {"I32", 32},
      {"I16", 16},     {"I8", 8},           {"U64", 64},         {"U32", 32},     {"U16", 16},    {"U8", 8},
      {"BOOL", 8},     {"F8_E4M3", 8},      {"F8_E5M2", 8},      {"F8_E8M0", 8},  {"F4", 4},      {"F6_E2M3", 6},
      {"F6_E3M2", 6},  {"F8_E4M3FNUZ", 8},  {"F8_E5M2FNUZ", 8},  {"C64", 64}};
  for (const auto& [name, bits] : table) EXPECT_EQ(dtype_bits(name), bits) << name;
}

TEST(DtypeBits, UnknownDtypeThrowsNamingIt) {
  expect_error([] { dtype_bits("F128"); }, {"F128"});
  expect_error([] { dtype_bits("f32"); }, {"f32"});
  expect_error([] { dtype_bits(""); }, {"dtype"});
}

TEST(ParseHeader, ValidHeaderKeepsOrderFieldsAndMetadata) {
  std::string json = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"}," +
                     tensor("z.weight", "BF16", "[2,3]", 0, 12) + "," + tensor("a.bias", "F32", "[3]", 12, 24) +
                     "," + tensor("scalar", "F64", "[]", 24, 32) + "," + tensor("empty", "F16", "[4,0]", 32, 32) +
                     "}    ";
  auto h = parse_safetensors_header(json, 32, "m.safetensors");
  EXPECT_EQ(h.file, "m.safetensors");
  EXPECT_EQ(h.header_length, json.size());
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.tensors[0].name, "z.weight");
  EXPECT_EQ(h.tensors[0].dtype, "BF16");
  EXPECT_EQ(h.tensors[0].shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(h.tensors[0].element_count, 6u);
  EXPECT_EQ(h.tensors[0].data_begin, 0u);
  EXPECT_EQ(h.tensors[0].data_end, 12u);
  EXPECT_EQ(h.tensors[1].name, "a.bias");
  EXPECT_EQ(h.tensors[2].name, "scalar");
  EXPECT_TRUE(h.tensors[2].shape.empty());
  EXPECT_EQ(h.tensors[2].element_count, 1u);
  EXPECT_EQ(h.tensors[3].element_count, 0u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.metadata.at("note"), "x");
  EXPECT_EQ(h.metadata.size(), 2u);
}

TEST(ParseHeader, EmptyHeaderAndNullMetadataAndUnknownFieldsAreAccepted) {
  EXPECT_TRUE(parse_safetensors_header("{}", 0, "f").tensors.empty());
  auto h = parse_safetensors_header(
      "{\"__metadata__\":null,\"t\":{\"extra\":{\"deep\":[[1],{\"k\":null}]},\"dtype\":\"U8\",\"shape\":[2],"
      "\"data_offsets\":[0,2],\"more\":true}}",
      2, "f");
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors[0].element_count, 2u);
  EXPECT_TRUE(h.metadata.empty());
}

TEST(ParseHeader, SubByteDtypesRoundUpToWholeBytes) {
  // 3 x F4 = 12 bits -> 2 bytes; 3 x F6 = 18 bits -> 3 bytes; 5 x F6 = 30 bits -> 4 bytes.
  EXPECT_NO_THROW(parse_safetensors_header("{" + tensor("t", "F4", "[3]", 0, 2) + "}", 2, "f"));
  expect_parse_error("{" + tensor("t", "F4", "[3]", 0, 1) + "}", 1, {"'t'", "needs 2"});
  expect_parse_error("{" + tensor("t", "F4", "[3]", 0, 3) + "}", 3, {"'t'", "needs 2"});
  EXPECT_NO_THROW(parse_safetensors_header("{" + tensor("t", "F6_E2M3", "[3]", 0, 3) + "}", 3, "f"));
  EXPECT_NO_THROW(parse_safetensors_header("{" + tensor("t", "F6_E3M2", "[5]", 0, 4) + "}", 4, "f"));
  EXPECT_NO_THROW(parse_safetensors_header("{" + tensor("t", "F4", "[8,2]", 0, 8) + "}", 8, "f"));
}

TEST(ParseHeader, MalformedJsonNamesFileAndPosition) {
  expect_parse_error("{\"a\": ", 0, {"not valid JSON at byte offset 6", "unexpected end of input"});
  expect_parse_error("{" + tensor("a", "U8", "[1]", 0, 1) + "} trailing", 1,
                     {"not valid JSON at byte offset 56", "after the header object"});
  expect_parse_error("", 0, {"not valid JSON at byte offset 0"});
  expect_parse_error("{\"bad\xff\":1}", 0, {"not valid JSON at byte offset 5", "UTF-8"});
  expect_parse_error("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,],\"data_offsets\":[0,1]}}", 1,
                     {"not valid JSON at byte offset 30"});
}

TEST(ParseHeader, JsonStringsAreDecodedExactly) {
  const std::string entry = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
  auto name_of = [&](const std::string& quoted_name) {
    return parse_safetensors_header("{" + quoted_name + ":" + entry + "}", 1, "f").tensors.at(0).name;
  };
  EXPECT_EQ(name_of("\"a\\u00e9\\n\\t\\\"\\\\\\/\\b\\f\\r\""), "a\u00e9\n\t\"\\/\b\f\r");
  EXPECT_EQ(name_of("\"\\ud83d\\ude00\""), "\xf0\x9f\x98\x80");  // surrogate pair -> U+1F600
  EXPECT_EQ(name_of("\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9\""), "\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9");
  EXPECT_EQ(name_of("\"\""), "");
  EXPECT_EQ(parse_safetensors_header(" \n\t{ \"a\" :\r{ \"dtype\" : \"U8\" , \"shape\" : [ 1 ] , \"data_offsets\" :"
                                     " [ 0 , 1 ] } } \n",
                                     1, "f")
                .tensors.size(),
            1u);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"\"\\udc00\"", "U+DC00..U+DFFF must follow"},
      {"\"\\ud83d\"", "must be followed by U+DC00..U+DFFF"},
      {"\"\\ud83d\\u0041\"", "must be followed by U+DC00..U+DFFF"},
      {"\"\\u12g4\"", "4 hex digits"},
      {"\"\\u12\"", "4 hex digits"},
      {"\"\\x41\"", "forbidden character after backslash"},
      {"\"a\tb\"", "control character"},
      {"\"\xc0\x80\"", "ill-formed UTF-8"},          // overlong NUL
      {"\"\xe0\x80\xaf\"", "ill-formed UTF-8"},      // overlong '/'
      {"\"\xed\xa0\x80\"", "ill-formed UTF-8"},      // UTF-16 surrogate encoded in UTF-8
      {"\"\xf4\x90\x80\x80\"", "ill-formed UTF-8"},  // above U+10FFFF
      {"\"\xe2\x82\"", "ill-formed UTF-8"},
      {"\"\x80\"", "ill-formed UTF-8"},
  };
  for (const auto& [quoted_name, why] : bad) {
    expect_parse_error("{" + quoted_name + ":" + entry + "}", 1, {"not valid JSON", why});
  }
  expect_parse_error("{\"abc", 0, {"not valid JSON at byte offset 5", "missing closing quote"});
  expect_parse_error("{\"abc\\", 0, {"not valid JSON at byte offset 6", "after backslash"});
}

TEST(ParseHeader, JsonSyntaxIsCheckedEverywhere) {
  const std::string t = tensor("a", "U8", "[1]", 0, 1);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{" + t + ",}", "expected string literal"},
      {"{" + t + " " + t + "}", "expected '}'"},
      {"{\"a\" {}}", "expected ':'"},
      {"{" + t, "unexpected end of input"},
      {"\xef\xbb\xbf{}", "unexpected character"},  // a UTF-8 byte order mark is not JSON
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", "expected ']'"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,],\"data_offsets\":[0,1]}}", ""},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[-],\"data_offsets\":[0,1]}}", "invalid number"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1.],\"data_offsets\":[0,1]}}", "expected digit after '.'"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1e],\"data_offsets\":[0,1]}}", "exponent"},
      {"{\"a\":{\"x\":tru,\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "invalid literal"},
      {"{\"a\":{\"x\":[1 2],\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "expected ']'"},
      {"{\"a\":{\"x\":{\"k\" 1},\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "expected ':'"},
      {"{\"a\":{\"x\":{1:2},\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "expected string literal"},
      {"{\"a\":{\"x\":@,\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "invalid literal; last read: '\"x\":@'"},
      {"{\"a\":{\"x\":[[[", "unexpected end of input"},
      {"{\"__metadata__\":nul}", "invalid literal"},
      {"{\"a\":[1,}", "unexpected '}'"},
      {"{\"a\":{\"dtype\":-x,\"shape\":[1],\"data_offsets\":[0,1]}}", "invalid number"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":{\"k\"},\"data_offsets\":[0,1]}}", "expected ':'"},
  };
  for (const auto& [json, why] : bad) expect_parse_error(json, 1, {"not valid JSON at byte offset", why});
  // Any valid JSON is skipped inside an unknown field.
  EXPECT_NO_THROW(parse_safetensors_header(
      "{\"a\":{\"x\":[-0.5E+3,1e5,0,-0,true,false,null,\"s\\\"\",{},[],{\"k\":[{}]}],\"dtype\":\"U8\",\"shape\":[1],"
      "\"data_offsets\":[0,1]}}",
      1, "f"));
}

TEST(ParseHeader, NulBytesAndByteOrderMarksAreNotJson) {
  const std::string obj = "{" + tensor("a", "U8", "[1]", 0, 1) + "}";
  const std::string nul(1, '\0');
  const std::string at = "not valid JSON at byte offset ";
  expect_parse_error(obj + nul, 1, {at + std::to_string(obj.size()), "NUL byte after the header object"});
  expect_parse_error(obj + "   " + nul + nul, 1, {at + std::to_string(obj.size() + 3), "NUL byte after"});
  expect_parse_error("{\"a" + nul + "b\":1}", 0, {at + "3: unexpected NUL byte"});
  expect_parse_error("{\"a\":" + nul + "}", 0, {at + "5: unexpected NUL byte"});
  expect_parse_error("{x" + nul, 0, {at + "1", "invalid literal"});  // the first error wins
  expect_parse_error("\xef\xbb\xbf" + obj, 1, {at + "0", "byte order mark"});
  expect_parse_error("\xef\xbb{}", 0, {"not valid JSON", "BOM"});
}

TEST(ParseHeader, SyntaxErrorsTakePrecedenceOverSchemaErrors) {
  auto message = [](const std::string& json) { return error_of(json, 1); };
  std::string m = message("{\"w\":3,\"x\" 1}");
  EXPECT_NE(m.find("not valid JSON at byte offset 11"), std::string::npos) << m;
  EXPECT_EQ(m.find("must be an object"), std::string::npos) << m;
  m = message("{" + tensor("w", "Q4_K", "[1]", 0, 1) + "} x");
  EXPECT_NE(m.find("not valid JSON"), std::string::npos) << m;
  EXPECT_EQ(m.find("Q4_K"), std::string::npos) << m;
  // Without a syntax error, the schema error is reported.
  m = message("{" + tensor("w", "Q4_K", "[1]", 0, 1) + "}");
  EXPECT_NE(m.find("tensor 'w': unknown dtype 'Q4_K'"), std::string::npos) << m;
}

TEST(ParseHeader, SyntaxErrorsQuoteTheOffendingTextSafely) {
  auto message = [](const std::string& json) { return error_of(json, 0); };
  const std::string unterminated = message("{\"" + std::string(100000, 'x'));
  EXPECT_NE(unterminated.find("not valid JSON at byte offset 100002"), std::string::npos) << unterminated;
  EXPECT_NE(unterminated.find("missing closing quote"), std::string::npos) << unterminated;
  EXPECT_NE(unterminated.find("xxx...'"), std::string::npos) << unterminated;
  EXPECT_LT(unterminated.size(), 600u);
  const std::string binary = message("{\"bad\xff\x01\":1}");
  EXPECT_NE(binary.find("last read: '\"bad\\xff'"), std::string::npos) << binary;
  for (char c : binary) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << binary;
}

TEST(ParseHeader, NonObjectTopLevelOrEntriesAreRejected) {
  expect_parse_error("[]", 0, {"must be a JSON object", "array"});
  expect_parse_error("42", 0, {"must be a JSON object", "number"});
  expect_parse_error("{\"w\":3}", 0, {"tensor 'w'", "must be an object", "number"});
  expect_parse_error("{\"w\":[1,2]}", 0, {"tensor 'w'", "must be an object", "array"});
  expect_parse_error("{\"w\":\"x\"}", 0, {"tensor 'w'", "must be an object", "string"});
}

TEST(ParseHeader, MetadataMustMapStringsToStrings) {
  expect_parse_error("{\"__metadata__\":{\"format\":1}}", 0, {"__metadata__", "'format'", "must be a string"});
  expect_parse_error("{\"__metadata__\":{\"format\":{}}}", 0, {"__metadata__", "'format'", "must be a string"});
  expect_parse_error("{\"__metadata__\":[\"pt\"]}", 0, {"__metadata__", "object of strings"});
  expect_parse_error("{\"__metadata__\":\"pt\"}", 0, {"__metadata__", "object of strings"});
  expect_parse_error("{\"__metadata__\":{},\"__metadata__\":null}", 0, {"__metadata__", "more than once"});
}

TEST(ParseHeader, FieldErrorsNameTheTensor) {
  expect_parse_error("{" + tensor("w", "Q4_K", "[2]", 0, 1) + "}", 1, {"tensor 'w'", "unknown dtype 'Q4_K'"});
  expect_parse_error("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                     {"'w'", "\"dtype\" must be a string"});
  expect_parse_error("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, {"'w'", "\"dtype\" is missing"});
  expect_parse_error("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, {"'w'", "\"shape\" is missing"});
  expect_parse_error("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, {"'w'", "\"data_offsets\" is missing"});
  expect_parse_error("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                     {"'w'", "\"dtype\" appears twice"});
  expect_parse_error("{" + tensor("w", "U8", "[-1]", 0, 1) + "}", 1, {"'w'", "\"shape\"", "negative"});
  expect_parse_error("{" + tensor("w", "U8", "[1.5]", 0, 1) + "}", 1, {"'w'", "\"shape\"", "not an integer"});
  expect_parse_error("{" + tensor("w", "U8", "[1e2]", 0, 100) + "}", 100, {"'w'", "\"shape\"", "not an integer"});
  expect_parse_error("{" + tensor("w", "U8", "[18446744073709551616]", 0, 1) + "}", 1, {"'w'", "not an integer"});
  expect_parse_error("{" + tensor("w", "U8", "[[1]]", 0, 1) + "}", 1,
                     {"'w'", "\"shape\"", "only non-negative integers"});
  expect_parse_error("{" + tensor("w", "U8", "[\"1\"]", 0, 1) + "}", 1, {"'w'", "\"shape\"", "string"});
  expect_parse_error("{" + tensor("w", "U8", "7", 0, 1) + "}", 1, {"'w'", "\"shape\"", "must be an array"});
  expect_parse_error("{" + tensor("w", "U8", "{}", 0, 1) + "}", 1, {"'w'", "\"shape\"", "must be an array"});
  expect_parse_error("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1,
                     {"'w'", "\"data_offsets\"", "exactly 2"});
  expect_parse_error("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1]}}", 1,
                     {"'w'", "\"data_offsets\"", "exactly 2", "found 1"});
  expect_parse_error("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}}", 1,
                     {"'w'", "\"data_offsets\"", "negative"});
}

TEST(ParseHeader, ShapeOverflowIsRejected) {
  expect_parse_error("{" + tensor("big", "U8", "[4294967296,4294967296]", 0, 1) + "}", 1,
                     {"tensor 'big'", "more than 2^64-1 elements"});
  expect_parse_error("{" + tensor("big", "U8", "[2,2,4611686018427387904]", 0, 1) + "}", 1, {"'big'", "2^64-1"});
  // Elements fit in 64 bits but their bytes do not.
  expect_parse_error("{" + tensor("big", "F32", "[4611686018427387904]", 0, 1) + "}", 1,
                     {"'big'", "needs more than 2^64-1 bytes"});
  // A zero dimension makes an otherwise overflowing shape empty only if it comes first.
  EXPECT_NO_THROW(parse_safetensors_header("{" + tensor("e", "U8", "[0,4294967296,4294967296]", 0, 0) + "}", 0, "f"));
}

TEST(ParseHeader, OffsetsMustLieInsideTheDataSectionAndMatchTheShape) {
  expect_parse_error("{" + tensor("w", "U8", "[2]", 4, 2) + "}", 4, {"tensor 'w'", "[4, 2)", "begin after"});
  expect_parse_error("{" + tensor("w", "U8", "[2]", 0, 2) + "}", 1, {"tensor 'w'", "outside the data section of 1"});
  expect_parse_error("{" + tensor("w", "U8", "[2]", 18446744073709551614ull, 18446744073709551615ull) + "}", 100,
                     {"'w'", "outside"});
  expect_parse_error("{" + tensor("w", "F32", "[2,2]", 0, 12) + "}", 12,
                     {"tensor 'w'", "hold 12 bytes", "[2, 2] of F32 needs 16"});
  expect_parse_error("{" + tensor("w", "F16", "[]", 0, 4) + "}", 4, {"'w'", "needs 2"});
}

TEST(ParseHeader, TensorsMustTileTheDataSection) {
  expect_parse_error("{" + tensor("a", "U8", "[2]", 0, 2) + "," + tensor("b", "U8", "[2]", 1, 3) + "}", 3,
                     {"tensor 'b'", "overlaps tensor 'a'"});
  expect_parse_error("{" + tensor("a", "U8", "[2]", 0, 2) + "," + tensor("b", "U8", "[2]", 0, 2) + "}", 2,
                     {"overlaps"});
  expect_parse_error("{" + tensor("a", "U8", "[1]", 0, 1) + "," + tensor("b", "U8", "[1]", 2, 3) + "}", 3,
                     {"[1, 2)", "before tensor 'b'", "belong to no tensor"});
  expect_parse_error("{" + tensor("a", "U8", "[1]", 1, 2) + "}", 2, {"[0, 1)", "belong to no tensor"});
  expect_parse_error("{" + tensor("a", "U8", "[1]", 0, 1) + "}", 5, {"cover 1 bytes", "has 5"});
  expect_parse_error("{}", 5, {"cover 0 bytes", "has 5"});
  expect_parse_error("{" + tensor("a", "U8", "[1]", 0, 1) + "," + tensor("a", "U8", "[1]", 1, 2) + "}", 2,
                     {"tensor 'a'", "more than once"});
  // Zero-sized tensors at a boundary are fine.
  EXPECT_NO_THROW(parse_safetensors_header(
      "{" + tensor("a", "U8", "[0]", 0, 0) + "," + tensor("b", "U8", "[2]", 0, 2) + "," +
          tensor("c", "U8", "[0]", 2, 2) + "}",
      2, "f"));
}

TEST(ParseHeader, HostileNamesAreEscapedAndShortenedInErrors) {
  std::string long_name(5000, 'x');
  try {
    parse_safetensors_header("{\"" + long_name + "\":1}", 0, "f");
    FAIL() << "expected an error";
  } catch (const SafetensorsError& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_NE(std::string(e.what()).find("xxx..."), std::string::npos);
  }
  expect_parse_error("{\"a\\u0001b\":1}", 0, {"'a\\x01b'"});
}

TEST(ParseHeader, DeepNestingDoesNotCrash) {
  std::string deep = "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":" + std::string(100000, '[') +
                     std::string(100000, ']') + "}}";
  EXPECT_NO_THROW(parse_safetensors_header(deep, 1, "f"));
  expect_parse_error(std::string(100000, '[') + std::string(100000, ']'), 0, {"must be a JSON object, found an array"});
  expect_parse_error(std::string(100000, '['), 0, {"not valid JSON at byte offset 100000", "end of input"});
}

class ReadHeader : public ::testing::Test {
 protected:
  TempDir dir;
  fs::path file = dir.path() / "model.safetensors";
};

TEST_F(ReadHeader, ReadsAValidFile) {
  uint64_t data = 0;
  std::string header = make_header({{"w", "BF16", {3, 4}}, {"b", "F32", {4}}}, data);
  write_file(file, header, data);
  auto h = read_safetensors_header(file);
  EXPECT_EQ(h.file, file.string());
  EXPECT_EQ(h.header_length, header.size());
  EXPECT_EQ(h.file_size, 8 + header.size() + data);
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].element_count, 12u);
  EXPECT_EQ(h.tensors[1].data_begin, 24u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

TEST_F(ReadHeader, TinyRandomPhiModelFixture) {
  fs::path shard = fs::path(MODELAGENT_FIXTURES_DIR) / "model-configs/tiny-random-PhiModel/model-1-of-2.safetensors";
  auto h = read_safetensors_header(shard);
  EXPECT_EQ(h.file_size, 188008u);
  EXPECT_EQ(h.header_length, 2872u);
  EXPECT_EQ(h.tensors.size(), 31u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  uint64_t elements = 0;
  for (const auto& t : h.tensors) {
    EXPECT_EQ(t.dtype, "F32") << t.name;
    elements += t.element_count;
  }
  EXPECT_EQ(elements, 46282u);
}

TEST_F(ReadHeader, FileErrorsNameTheFile) {
  expect_error([&] { read_safetensors_header(dir.path() / "absent.safetensors"); },
               {"absent.safetensors", "cannot open"});
  expect_error([&] { read_safetensors_header(dir.path()); }, {dir.path().string(), "not a regular file"});
  const fs::path fifo = dir.path() / "fifo.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { read_safetensors_header(fifo); }, {fifo.string(), "not a regular file"});
  {
    std::ofstream(file, std::ios::binary) << "abc";
  }
  expect_error([&] { read_safetensors_header(file); }, {file.string(), "3 bytes", "too short"});
}

TEST_F(ReadHeader, HeaderLengthBeyondTheFileIsRejected) {
  write_raw(file, 1000, "{}", 0);
  expect_error([&] { read_safetensors_header(file); }, {file.string(), "header length 1000", "2 bytes that follow"});
  write_raw(file, UINT64_MAX, "{}", 0);
  expect_error([&] { read_safetensors_header(file); }, {file.string(), "exceeds the limit"});
}

TEST_F(ReadHeader, HeaderLengthOver100MiBIsRejectedEvenWhenTheFileIsLarger) {
  const uint64_t limit = 100ull * 1024 * 1024;
  write_raw(file, limit + 1, "{}", 2 * limit);  // sparse: 200 MiB of hole
  expect_error([&] { read_safetensors_header(file); }, {file.string(), std::to_string(limit + 1), "100 MiB"});
}

TEST_F(ReadHeader, ParseErrorsFromAFileNameTheFileAndTheTensor) {
  write_file(file, "{" + tensor("model.w", "F32", "[4]", 0, 16) + "}", 12);
  expect_error([&] { read_safetensors_header(file); }, {file.string(), "tensor 'model.w'", "outside"});
  write_file(file, "{" + tensor("model.w", "F32", "[4]", 0, 16) + "}", 20);
  expect_error([&] { read_safetensors_header(file); }, {file.string(), "cover 16 bytes", "has 20"});
}

namespace {

struct ProcIo {
  uint64_t rchar = 0, syscr = 0;
  uint64_t own_bytes = 0, own_calls = 0;  // what reading /proc/self/io itself cost
};

ProcIo read_proc_io() {
  ProcIo io;
  int fd = ::open("/proc/self/io", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    ++io.own_calls;
    if (n <= 0) break;
    io.own_bytes += static_cast<uint64_t>(n);
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto field = [&](const std::string& key) {
    auto pos = text.find(key + ": ");
    EXPECT_NE(pos, std::string::npos) << key;
    return std::strtoull(text.c_str() + pos + key.size() + 2, nullptr, 10);
  };
  io.rchar = field("rchar");
  io.syscr = field("syscr");
  return io;
}

}  // namespace

TEST_F(ReadHeader, ReadsOnlyThePrefixAndHeaderOfAHugeSparseFile) {
  // A 4 GiB tensor whose data is a hole in a sparse file: reading it would take seconds and show in rchar.
  uint64_t data = 0;
  std::vector<Spec> specs;
  for (int i = 0; i < 200; ++i) specs.push_back({"model.layers." + std::to_string(i) + ".weight", "F16", {16, 16}});
  specs.push_back({"huge", "F32", {1ull << 30}});
  std::string header = make_header(specs, data);
  write_file(file, header, data);
  ASSERT_EQ(fs::file_size(file), 8 + header.size() + data);
  ASSERT_GT(data, 4ull << 30);

  read_proc_io();  // warm up
  ProcIo before = read_proc_io();
  auto h = read_safetensors_header(file);
  ProcIo after = read_proc_io();
  // rchar/syscr sampled at `after` include the reads of `before` itself; subtract them.
  const uint64_t bytes = after.rchar - before.rchar - before.own_bytes;
  const uint64_t calls = after.syscr - before.syscr - before.own_calls;
  EXPECT_EQ(bytes, 8 + header.size());
  EXPECT_LE(calls, 2u);  // the 8-byte length, then the N-byte header
  EXPECT_EQ(h.tensors.size(), 201u);
  EXPECT_EQ(h.tensors.back().element_count, 1ull << 30);
}

TEST(FuzzCorpus, SeedsParseOrFailCleanly) {
  // Each seed is a whole safetensors file image, read the way the fuzz target reads its input.
  // valid_* seeds must parse; bad_* seeds must be rejected with SafetensorsError.
  fs::path corpus = fs::path(MODELAGENT_SOURCE_DIR) / "cpp/fuzz/corpus";
  size_t valid = 0, bad = 0;
  for (const auto& entry : fs::directory_iterator(corpus)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string name = entry.path().filename().string();
    auto parse = [&] {
      ASSERT_GE(bytes.size(), 8u) << name;
      uint64_t n = 0;
      for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
      ASSERT_LE(n, bytes.size() - 8) << name;
      parse_safetensors_header(std::string_view(bytes).substr(8, n), bytes.size() - 8 - n, name);
    };
    if (name.rfind("valid_", 0) == 0) {
      EXPECT_NO_THROW(parse()) << name;
      ++valid;
    } else if (name.rfind("bad_", 0) == 0) {
      EXPECT_THROW(parse(), SafetensorsError) << name;
      ++bad;
    } else {
      ADD_FAILURE() << "corpus file " << name << " is neither valid_* nor bad_*";
    }
  }
  EXPECT_GE(valid, 3u);
  EXPECT_GE(bad, 5u);
}
