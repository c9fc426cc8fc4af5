#include <gtest/gtest.h>

#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/huggingface.hpp"

namespace hf = modelagent::hf;
using modelagent::HttpResponse;

namespace {

HttpResponse response(long status, std::initializer_list<std::pair<std::string, std::string>> headers = {},
                      std::string body = "") {
  HttpResponse r;
  r.status = status;
  for (const auto& [k, v] : headers) r.headers.emplace(k, v);
  r.body = std::move(body);
  return r;
}

const std::string kUrl = "http://127.0.0.1:1/api/models/org/name/revision/main";
const hf::ErrorContext kContext{"org/name", "main", "weights/model.safetensors"};

template <typename E>
E expect_error(const HttpResponse& r) {
  try {
    hf::raise_for_status(r, kUrl, kContext);
  } catch (const E& e) {
    EXPECT_EQ(e.status(), r.status);
    EXPECT_EQ(e.url(), kUrl);
    EXPECT_NE(std::string(e.what()).find(kUrl), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("org/name"), std::string::npos) << e.what();
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    throw;
  }
  ADD_FAILURE() << "no exception for status " << r.status;
  throw std::logic_error("unreachable");
}

template <typename E>
bool is_exactly(const std::exception& e) {
  return typeid(e) == typeid(E);
}

}  // namespace

TEST(HfErrors, SuccessAndInformationalPass) {
  EXPECT_NO_THROW(hf::raise_for_status(response(200), kUrl, kContext));
  EXPECT_NO_THROW(hf::raise_for_status(response(206), kUrl, kContext));
}

TEST(HfErrors, ErrorCodeHeaderDecidesFirst) {
  auto rev = expect_error<modelagent::RevisionNotFoundError>(response(404, {{"x-error-code", "RevisionNotFound"}}));
  EXPECT_NE(std::string(rev.what()).find("revision 'main'"), std::string::npos) << rev.what();

  auto entry = expect_error<modelagent::EntryNotFoundError>(response(404, {{"x-error-code", "EntryNotFound"}}));
  EXPECT_NE(std::string(entry.what()).find("weights/model.safetensors"), std::string::npos) << entry.what();

  auto repo = expect_error<modelagent::RepositoryNotFoundError>(response(404, {{"x-error-code", "RepoNotFound"}}));
  EXPECT_TRUE(is_exactly<modelagent::RepositoryNotFoundError>(repo));

  auto gated_anon = expect_error<modelagent::GatedRepoError>(
      response(401, {{"x-error-code", "GatedRepo"}, {"x-error-message", "Access to model org/name is restricted."}}));
  EXPECT_NE(std::string(gated_anon.what()).find("Access to model org/name is restricted."), std::string::npos);
  expect_error<modelagent::GatedRepoError>(response(403, {{"x-error-code", "GatedRepo"}}));
  // A gated repo is also a RepositoryNotFoundError, as in huggingface_hub.
  EXPECT_THROW(hf::raise_for_status(response(403, {{"x-error-code", "GatedRepo"}}), kUrl, kContext),
               modelagent::RepositoryNotFoundError);
}

TEST(HfErrors, Status401IsRepoNotFoundUnlessCredentialsWereInvalid) {
  auto plain = expect_error<modelagent::RepositoryNotFoundError>(response(401));
  EXPECT_TRUE(is_exactly<modelagent::RepositoryNotFoundError>(plain));
  expect_error<modelagent::UnauthorizedError>(
      response(401, {{"x-error-message", "Invalid credentials in Authorization header"}}));
}

TEST(HfErrors, RateLimitCarriesTheRequestedWait) {
  auto e = expect_error<modelagent::RateLimitedError>(response(429, {{"retry-after", "42"}}));
  EXPECT_DOUBLE_EQ(e.retry_after(), 42);
  auto e2 = expect_error<modelagent::RateLimitedError>(response(429, {{"ratelimit", "\"api\";r=0;t=55"}}));
  EXPECT_DOUBLE_EQ(e2.retry_after(), 55);
  EXPECT_DOUBLE_EQ(expect_error<modelagent::RateLimitedError>(response(429)).retry_after(), 0);
}

TEST(HfErrors, OtherStatusesAreHttpStatusErrorsWithServerDetails) {
  auto e = expect_error<modelagent::HttpStatusError>(
      response(500, {{"x-request-id", "req-123"}}, "upstream exploded\nbadly"));
  EXPECT_TRUE(is_exactly<modelagent::HttpStatusError>(e));
  std::string what = e.what();
  EXPECT_NE(what.find("req-123"), std::string::npos) << what;
  EXPECT_NE(what.find("upstream exploded badly"), std::string::npos) << what;
  EXPECT_NE(what.find("HTTP 500"), std::string::npos) << what;

  auto disabled = expect_error<modelagent::HttpStatusError>(
      response(403, {{"x-error-message", "Access to this resource is disabled."}}));
  EXPECT_NE(std::string(disabled.what()).find("disabled"), std::string::npos);

  auto not_found = expect_error<modelagent::HttpStatusError>(response(404));
  EXPECT_TRUE(is_exactly<modelagent::HttpStatusError>(not_found));
}
