#include <gtest/gtest.h>

#include <cmath>

#include "modelagent/http_client.hpp"

using modelagent::HttpResponse;

namespace {
HttpResponse with_headers(std::initializer_list<std::pair<std::string, std::string>> headers) {
  HttpResponse r;
  for (const auto& [k, v] : headers) r.headers.emplace(k, v);
  return r;
}
}  // namespace

TEST(RetryPolicy, RetryableStatuses) {
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) EXPECT_TRUE(modelagent::is_retryable_status(s)) << s;
  for (long s : {200L, 301L, 400L, 401L, 403L, 404L, 416L}) EXPECT_FALSE(modelagent::is_retryable_status(s)) << s;
}

TEST(RetryPolicy, RateLimitHeaderWinsWhenQuotaExhausted) {
  auto r = with_headers({{"ratelimit", "\"api\";r=0;t=55"}, {"retry-after", "3"}});
  EXPECT_DOUBLE_EQ(modelagent::server_requested_wait(r), 55);
}

TEST(RetryPolicy, RateLimitWithQuotaLeftFallsBackToRetryAfter) {
  auto r = with_headers({{"ratelimit", "\"api\";r=4;t=55"}, {"retry-after", "3"}});
  EXPECT_DOUBLE_EQ(modelagent::server_requested_wait(r), 3);
}

TEST(RetryPolicy, RetryAfterHttpDateInThePast) {
  auto r = with_headers({{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}});
  EXPECT_DOUBLE_EQ(modelagent::server_requested_wait(r), 0);
}

TEST(RetryPolicy, NoHeadersMeansNoRequestedWait) {
  EXPECT_LT(modelagent::server_requested_wait(HttpResponse{}), 0);
  EXPECT_LT(modelagent::server_requested_wait(with_headers({{"retry-after", "soon"}})), 0);
}

TEST(RetryPolicy, BackoffIsCappedAndJittered) {
  modelagent::RetryPolicy p;
  p.base_seconds = 1;
  p.cap_seconds = 8;
  for (int attempt = 1; attempt <= 10; ++attempt) {
    double ceiling = std::min(8.0, std::pow(2.0, attempt - 1));
    double b = modelagent::backoff_seconds(p, attempt);
    EXPECT_GE(b, ceiling / 2);
    EXPECT_LE(b, ceiling);
  }
}

TEST(HttpResponse, HeaderLookupIsCaseInsensitive) {
  auto r = with_headers({{"x-repo-commit", "abc"}});
  EXPECT_EQ(r.header("X-Repo-Commit"), "abc");
  EXPECT_EQ(r.header("missing"), "");
}
