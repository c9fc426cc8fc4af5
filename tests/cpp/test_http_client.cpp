#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <memory>
#include <vector>

#include "modelagent/errors.hpp"
#include "modelagent/http_client.hpp"
#include "modelagent/request_signer.hpp"
#include "support/hf_test_server.hpp"
#include "support/refused_port.hpp"

using hf_test::Request;
using hf_test::Response;
using hf_test::Server;
using modelagent::HttpRequest;
using modelagent::RetryPolicy;

namespace {

RetryPolicy fast_policy(int attempts = 4) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.base_seconds = 0.01;
  p.cap_seconds = 0.02;
  p.max_total_seconds = 10;
  return p;
}

HttpRequest get(const std::string& url) {
  HttpRequest r;
  r.url = url;
  r.timeout_seconds = 20;
  return r;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST(HttpClient, GetReturnsStatusBodyAndLowerCasedHeaders) {
  Server server([](const Request& r) {
    return Response{200, {{"Content-Type", "application/json"}, {"X-Repo-Commit", "abc"}}, "{\"ok\":true}"};
  });
  auto request = get(server.base_url() + "/api/x?y=1");
  request.headers = {{"Authorization", "Bearer t0k"}};
  auto res = modelagent::http_request(request, fast_policy());
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "{\"ok\":true}");
  EXPECT_EQ(res.header("X-REPO-COMMIT"), "abc");
  EXPECT_EQ(res.header("content-type"), "application/json");
  EXPECT_EQ(res.header("absent"), "");
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/api/x?y=1");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer t0k");
  EXPECT_EQ(seen[0].header("user-agent").rfind("modelagent/", 0), 0u) << seen[0].header("user-agent");
}

TEST(HttpClient, HeadHasHeadersButNoBody) {
  Server server([](const Request& r) { return Response{200, {{"X-Linked-Size", "123"}}, std::string(123, 'x')}; });
  auto request = get(server.base_url() + "/file");
  request.method = "HEAD";
  auto res = modelagent::http_request(request, fast_policy());
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(res.body.empty());
  EXPECT_EQ(res.header("content-length"), "123");
  EXPECT_EQ(server.requests().at(0).method, "HEAD");
}

TEST(HttpClient, SameOriginRedirectKeepsAuthorizationAndResolvesRelativeLocation) {
  Server server([](const Request& r) {
    if (r.target == "/start") return Response{302, {{"Location", "/next/place?q=1"}}, ""};
    return Response{200, {}, "arrived"};
  });
  auto request = get(server.base_url() + "/start");
  request.headers = {{"Authorization", "Bearer secret"}};
  auto res = modelagent::http_request(request, fast_policy());
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "arrived");
  EXPECT_EQ(res.effective_url, server.base_url() + "/next/place?q=1");
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].target, "/next/place?q=1");
  EXPECT_EQ(seen[1].header("authorization"), "Bearer secret");
}

TEST(HttpClient, CrossHostRedirectDropsAuthorization) {
  Server cdn([](const Request& r) { return Response{200, {}, "cdn bytes"}; }, "127.0.0.2");
  Server hub([&](const Request& r) {
    return Response{302, {{"Location", cdn.base_url() + "/blob?sig=abc"}}, ""};
  });
  auto request = get(hub.base_url() + "/org/model/resolve/main/model.safetensors");
  request.headers = {{"Authorization", "Bearer secret"}, {"X-Other", "kept"}};
  auto res = modelagent::http_request(request, fast_policy());
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "cdn bytes");
  ASSERT_EQ(cdn.requests().size(), 1u);
  EXPECT_FALSE(cdn.requests()[0].has_header("authorization"));
  EXPECT_EQ(cdn.requests()[0].header("x-other"), "kept");
  EXPECT_EQ(hub.requests().at(0).header("authorization"), "Bearer secret");
}

TEST(HttpClient, RedirectToSameHostOtherPortAlsoDropsAuthorization) {
  Server other([](const Request& r) { return Response{200, {}, "other port"}; });
  Server hub([&](const Request& r) { return Response{307, {{"Location", other.base_url() + "/x"}}, ""}; });
  auto request = get(hub.base_url() + "/x");
  request.headers = {{"Authorization", "Bearer secret"}};
  EXPECT_EQ(modelagent::http_request(request, fast_policy()).body, "other port");
  EXPECT_FALSE(other.requests().at(0).has_header("authorization"));
}

TEST(HttpClient, RedirectsNotFollowedWhenDisabled) {
  Server server([](const Request& r) { return Response{302, {{"Location", "/elsewhere"}}, ""}; });
  auto request = get(server.base_url() + "/start");
  request.follow_redirects = false;
  auto res = modelagent::http_request(request, fast_policy());
  EXPECT_EQ(res.status, 302);
  EXPECT_EQ(res.header("location"), "/elsewhere");
  EXPECT_EQ(server.request_count(), 1u);
}

TEST(HttpClient, RedirectLoopIsAnErrorNamingTheUrl) {
  Server server([](const Request& r) { return Response{302, {{"Location", "/loop"}}, ""}; });
  auto request = get(server.base_url() + "/loop");
  try {
    modelagent::http_request(request, fast_policy());
    FAIL() << "no error";
  } catch (const modelagent::DownloadError& e) {
    EXPECT_NE(std::string(e.what()).find(server.base_url() + "/loop"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("redirects"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.request_count(), 11u);
}

TEST(HttpClient, SeeOtherTurnsPostIntoGet) {
  Server server([](const Request& r) {
    if (r.method == "POST") return Response{303, {{"Location", "/result"}}, ""};
    return Response{200, {}, r.method + " " + r.target};
  });
  auto request = get(server.base_url() + "/submit");
  request.method = "POST";
  request.body = "payload";
  auto res = modelagent::http_request(request, fast_policy());
  EXPECT_EQ(res.body, "GET /result");
  EXPECT_EQ(server.requests().at(0).body, "payload");
}

TEST(HttpClient, RetriesServerErrorsThenSucceeds) {
  std::atomic<int> calls{0};
  Server server([&](const Request& r) {
    if (++calls <= 2) return Response{503, {}, "busy"};
    return Response{200, {}, "fine"};
  });
  auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy());
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "fine");
  EXPECT_EQ(server.request_count(), 3u);
}

TEST(HttpClient, ReturnsLastRetryableResponseWhenAttemptsRunOut) {
  Server server([](const Request& r) { return Response{500, {}, "broken"}; });
  auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy(3));
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.body, "broken");
  EXPECT_EQ(server.request_count(), 3u);
}

TEST(HttpClient, ClientErrorsAreNotRetried) {
  for (int status : {400, 401, 403, 404}) {
    Server server([&](const Request& r) { return Response{status, {}, ""}; });
    auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy());
    EXPECT_EQ(res.status, status);
    EXPECT_EQ(server.request_count(), 1u) << status;
  }
}

// Signs with "Bearer token-<generation>"; renewing moves to the next generation unless `renewable` is false.
class RenewingSigner : public modelagent::RequestSigner {
 public:
  explicit RenewingSigner(bool renewable) : renewable_(renewable) {}
  void sign(const std::string&, const std::string&, const std::string&, modelagent::HeaderList& headers) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    headers.emplace_back("Authorization", "Bearer token-" + std::to_string(generation_));
  }
  bool renew_after_rejection(const modelagent::HeaderList& rejected) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    rejected_.push_back(modelagent::authorization_of(rejected));
    if (!renewable_) return false;
    ++generation_;
    return true;
  }
  std::string describe() const override { return "test signer"; }
  std::vector<std::string> rejected() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return rejected_;
  }

 private:
  bool renewable_;
  mutable std::mutex mutex_;
  mutable int generation_ = 1;
  mutable std::vector<std::string> rejected_;
};

TEST(HttpClient, RejectedCredentialsAreRenewedOnceAndTheRequestRepeated) {
  Server server([](const Request& r) {
    return r.header("authorization") == "Bearer token-2" ? Response{200, {}, "listed"} : Response{401, {}, "{}"};
  });
  auto signer = std::make_shared<RenewingSigner>(true);
  HttpRequest request = get(server.base_url() + "/list");
  request.signer = signer;
  auto res = modelagent::http_request(request, fast_policy(1));  // not counted as a retry
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "listed");
  EXPECT_EQ(signer->rejected(), std::vector<std::string>{"Bearer token-1"});
}

TEST(HttpClient, ARenewalThatDoesNotHelpIsNotRepeated) {
  Server server([](const Request&) { return Response{401, {}, "{}"}; });
  auto signer = std::make_shared<RenewingSigner>(true);
  HttpRequest request = get(server.base_url() + "/list");
  request.signer = signer;
  EXPECT_EQ(modelagent::http_request(request, fast_policy()).status, 401);
  EXPECT_EQ(server.request_count(), 2u);
  EXPECT_EQ(signer->rejected().size(), 1u);
}

TEST(HttpClient, FixedKeysAreNotRetriedAfterA401) {
  Server server([](const Request&) { return Response{401, {}, "{}"}; });
  auto signer = std::make_shared<RenewingSigner>(false);
  HttpRequest request = get(server.base_url() + "/list");
  request.signer = signer;
  EXPECT_EQ(modelagent::http_request(request, fast_policy()).status, 401);
  EXPECT_EQ(server.request_count(), 1u);
}

TEST(RejectsCredentials, StatusAndS3ErrorCodes) {
  using modelagent::rejects_credentials;
  EXPECT_TRUE(rejects_credentials(401, ""));
  EXPECT_TRUE(rejects_credentials(400, "<Error><Code>ExpiredToken</Code></Error>"));
  EXPECT_TRUE(rejects_credentials(403, "<Error><Code>InvalidToken</Code></Error>"));
  EXPECT_TRUE(rejects_credentials(403, "", "HEAD"));  // S3 sends no error document for HEAD
  EXPECT_FALSE(rejects_credentials(403, "<Error><Code>AccessDenied</Code></Error>"));
  EXPECT_FALSE(rejects_credentials(403, ""));
  EXPECT_FALSE(rejects_credentials(404, "", "HEAD"));
  EXPECT_FALSE(rejects_credentials(500, "<Code>ExpiredToken</Code>"));
  EXPECT_EQ(modelagent::authorization_of({{"X-A", "1"}, {"AUTHORIZATION", "Bearer x"}}), "Bearer x");
  EXPECT_EQ(modelagent::authorization_of({{"X-A", "1"}}), "");
}

TEST(HttpClient, HonoursRetryAfterOn429) {
  std::atomic<int> calls{0};
  Server server([&](const Request& r) {
    if (++calls == 1) return Response{429, {{"Retry-After", "1"}}, ""};
    return Response{200, {}, "ok"};
  });
  auto policy = fast_policy();
  auto start = std::chrono::steady_clock::now();
  auto res = modelagent::http_request(get(server.base_url() + "/x"), policy);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(server.request_count(), 2u);
  // The backoff alone would be at most 0.02 s; the server asked for 1 s.
  EXPECT_GE(seconds_since(start), 0.95);
}

TEST(HttpClient, HonoursRateLimitHeaderOn429) {
  std::atomic<int> calls{0};
  Server server([&](const Request& r) {
    if (++calls == 1) return Response{429, {{"RateLimit", "\"api\";r=0;t=1"}}, ""};
    return Response{200, {}, "ok"};
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(modelagent::http_request(get(server.base_url() + "/x"), fast_policy()).status, 200);
  EXPECT_GE(seconds_since(start), 0.95);
}

TEST(HttpClient, RequestedWaitBeyondTheBudgetReturnsThe429AtOnce) {
  Server server([](const Request& r) { return Response{429, {{"Retry-After", "3600"}}, ""}; });
  auto policy = fast_policy();
  policy.max_total_seconds = 5;
  auto res = modelagent::http_request(get(server.base_url() + "/x"), policy);
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(res.header("retry-after"), "3600");
  EXPECT_EQ(server.request_count(), 1u);
}

TEST(HttpClient, RetriedRateLimitsAreCountedInProgress) {
  std::atomic<int> calls{0};
  Server server([&](const Request& r) {
    if (++calls <= 2) return Response{429, {{"Retry-After", "0"}}, ""};
    return Response{200, {}, "ok"};
  });
  modelagent::DownloadProgress progress;
  auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy(), {}, nullptr, &progress);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(progress.rate_limited.load(), 2u);
  EXPECT_EQ(progress.retries.load(), 2u);
  EXPECT_EQ(progress.rate_limit_wait_seconds.load(), 0.0);
  EXPECT_EQ(progress.bytes_fetched.load(), 0u);
}

TEST(HttpClient, RateLimitWaitsAddUpInProgress) {
  std::atomic<int> calls{0};
  Server server([&](const Request& r) {
    if (++calls == 1) return Response{429, {{"Retry-After", "1"}}, ""};
    return Response{200, {}, "ok"};
  });
  modelagent::DownloadProgress progress;
  progress.rate_limited = 3;  // counts of earlier calls are added to, not replaced
  progress.rate_limit_wait_seconds = 0.5;
  auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy(), {}, nullptr, &progress);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(progress.rate_limited.load(), 4u);
  EXPECT_DOUBLE_EQ(progress.rate_limit_wait_seconds.load(), 1.5);
}

TEST(HttpClient, OtherRetriesCountOnlyAsRetries) {
  std::atomic<int> calls{0};
  Server server([&](const Request& r) {
    int n = ++calls;
    if (n == 1) {  // on a fresh connection, so libcurl does not silently retry it itself
      Response cut;
      cut.cut = true;
      return cut;
    }
    if (n == 2) return Response{503, {}, "busy"};
    return Response{200, {}, "ok"};
  });
  modelagent::DownloadProgress progress;
  auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy(), {}, nullptr, &progress);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(server.request_count(), 3u);
  EXPECT_EQ(progress.retries.load(), 2u);
  EXPECT_EQ(progress.rate_limited.load(), 0u);
}

TEST(HttpClient, AFinal429ThatIsNotRetriedIsNotCounted) {
  Server server([](const Request& r) { return Response{429, {{"Retry-After", "0"}}, ""}; });
  modelagent::DownloadProgress progress;
  auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy(3), {}, nullptr, &progress);
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(server.request_count(), 3u);
  EXPECT_EQ(progress.rate_limited.load(), 2u);
  EXPECT_EQ(progress.retries.load(), 2u);
}

TEST(HttpClient, RetriesCutConnections) {
  std::atomic<int> calls{0};
  Server server([&](const Request& r) {
    if (++calls == 1) {
      Response cut;
      cut.cut = true;
      return cut;
    }
    return Response{200, {}, "second time lucky"};
  });
  auto res = modelagent::http_request(get(server.base_url() + "/x"), fast_policy());
  EXPECT_EQ(res.body, "second time lucky");
  EXPECT_EQ(server.request_count(), 2u);
}

TEST(HttpClient, ConnectionRefusedIsAnErrorNamingTheUrlAfterRetries) {
  testsupport::RefusedPort gone;  // stays refused: a stopped server's port could be reused by another test's
  std::string url = gone.base_url() + "/api/models/x";
  try {
    modelagent::http_request(get(url), fast_policy(3));
    FAIL() << "no error";
  } catch (const modelagent::DownloadError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(url), std::string::npos) << what;
    EXPECT_NE(what.find("3 attempts"), std::string::npos) << what;
  }
}

TEST(HttpClient, ReusesTheConnectionAcrossRequests) {
  Server server([](const Request& r) { return Response{200, {}, "x"}; });
  for (int i = 0; i < 5; ++i) modelagent::http_request(get(server.base_url() + "/x"), fast_policy());
  EXPECT_EQ(server.request_count(), 5u);
  EXPECT_EQ(server.connections_accepted(), 1);
}

TEST(HttpClient, CancelledBeforeStartSendsNothing) {
  Server server([](const Request& r) { return Response{}; });
  modelagent::CancelToken cancel;
  cancel.cancel();
  EXPECT_THROW(modelagent::http_request(get(server.base_url() + "/x"), fast_policy(), {}, &cancel),
               modelagent::CancelledError);
  EXPECT_EQ(server.request_count(), 0u);
}

TEST(HttpClient, CancelInterruptsARetryWait) {
  Server server([](const Request& r) { return Response{429, {{"Retry-After", "60"}}, ""}; });
  modelagent::CancelToken cancel;
  std::thread canceller([&] {
    while (server.request_count() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancel.cancel();
  });
  auto policy = fast_policy();
  policy.max_total_seconds = 120;
  EXPECT_THROW(modelagent::http_request(get(server.base_url() + "/x"), policy, {}, &cancel),
               modelagent::CancelledError);
  canceller.join();
  EXPECT_EQ(server.request_count(), 1u);
}

TEST(HttpClient, CancelInterruptsAStalledResponse) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  Server server([&](const Request& r) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    return Response{200, {}, "late"};
  });
  modelagent::CancelToken cancel;
  std::thread canceller([&] {
    while (server.request_count() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancel.cancel();
  });
  EXPECT_THROW(modelagent::http_request(get(server.base_url() + "/x"), fast_policy(), {}, &cancel),
               modelagent::CancelledError);
  canceller.join();
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
}

TEST(HttpClient, HonoursHttpProxyVariable) {
  Server proxy([](const Request& r) { return Response{200, {}, "via proxy"}; });
  const char* saved = std::getenv("http_proxy");
  std::string saved_value = saved ? saved : "";
  ::setenv("http_proxy", proxy.base_url().c_str(), 1);
  auto res = modelagent::http_request(get("http://model-host.invalid/api/models/a/b"), fast_policy(1));
  if (saved) ::setenv("http_proxy", saved_value.c_str(), 1); else ::unsetenv("http_proxy");
  EXPECT_EQ(res.body, "via proxy");
  ASSERT_EQ(proxy.request_count(), 1u);
  EXPECT_EQ(proxy.requests()[0].target, "http://model-host.invalid/api/models/a/b");
}

TEST(HttpClient, RejectsNonHttpRedirects) {
  Server server([](const Request& r) { return Response{302, {{"Location", "file:///etc/passwd"}}, ""}; });
  EXPECT_THROW(modelagent::http_request(get(server.base_url() + "/x"), fast_policy()), modelagent::DownloadError);
}

TEST(HttpClient, AcceptsAndDecodesCompressedApiResponses) {
  // gzip.compress(b'{"sha":"ok"}', mtime=0)
  const unsigned char gz[] = {31,  139, 8,   0,   0,   0,   0,   0,   2,   3,   171, 86,  42,  206, 72,  84,
                              178, 82,  202, 207, 86,  170, 5,   0,   174, 144, 122, 254, 12,  0,   0,   0};
  Server server([&](const Request& r) {
    if (r.header("accept-encoding").find("gzip") == std::string::npos) return Response{200, {}, "plain"};
    return Response{200, {{"Content-Encoding", "gzip"}}, std::string(reinterpret_cast<const char*>(gz), sizeof gz)};
  });
  auto res = modelagent::http_request(get(server.base_url() + "/api/x"), fast_policy());
  EXPECT_EQ(res.body, "{\"sha\":\"ok\"}");
  // An explicit Accept-Encoding (e.g. identity for HEAD metadata) is sent as given.
  auto request = get(server.base_url() + "/api/x");
  request.headers = {{"Accept-Encoding", "identity"}};
  EXPECT_EQ(modelagent::http_request(request, fast_policy()).body, "plain");
}
