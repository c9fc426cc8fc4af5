// TLS verification: a self-signed server is refused by default, accepted with its certificate as the
// CA bundle, and accepted without verification only when verify_tls is off.

#include <gtest/gtest.h>

#include <algorithm>

#include "modelagent/download_engine.hpp"
#include "modelagent/errors.hpp"
#include "support/loopback_test_util.hpp"
#include "support/tls_server.hpp"

using namespace modelagent;
using testsupport::planned;
using testsupport::read_file;
using testsupport::TempDir;

TEST(DownloadTls, UntrustedCertificateIsRefusedWithoutRetrying) {
  TempDir dir;
  testsupport::TlsServer server("secret weights", dir / "cert.pem");
  DownloadPlan plan;
  plan.files.push_back(planned("w.bin", server.url("/w.bin"), "secret weights"));
  try {
    run_download(plan, dir / "out", testsupport::fast_options());
    FAIL() << "an untrusted certificate was accepted";
  } catch (const DownloadError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("certificate"), std::string::npos) << what;
    EXPECT_NE(what.find(server.url("/w.bin")), std::string::npos) << what;
  }
  EXPECT_EQ(server.requests(), 0);  // nothing was sent over the unverified connection
  EXPECT_FALSE(testsupport::exists(dir / "out/w.bin"));
}

TEST(DownloadTls, CaBundleMakesTheServerTrusted) {
  TempDir dir;
  testsupport::TlsServer server("secret weights", dir / "cert.pem");
  DownloadPlan plan;
  plan.files.push_back(planned("w.bin", server.url("/w.bin"), "secret weights"));
  auto options = testsupport::fast_options();
  options.ca_bundle = (dir / "cert.pem").string();
  run_download(plan, dir / "out", options);
  EXPECT_EQ(read_file(dir / "out/w.bin"), "secret weights");
  EXPECT_EQ(server.requests(), 1);
}

TEST(DownloadTls, VerificationCanBeSwitchedOff) {
  TempDir dir;
  testsupport::TlsServer server("secret weights", dir / "cert.pem");
  DownloadPlan plan;
  plan.files.push_back(planned("w.bin", server.url("/w.bin"), "secret weights"));
  auto options = testsupport::fast_options();
  options.verify_tls = false;
  run_download(plan, dir / "out", options);
  EXPECT_EQ(read_file(dir / "out/w.bin"), "secret weights");
}

TEST(DownloadTls, Http2IsOfferedFirstOverTls) {
  TempDir dir;
  testsupport::TlsServer server("weights", dir / "cert.pem");
  DownloadPlan plan;
  plan.files.push_back(planned("w.bin", server.url("/w.bin"), "weights"));
  auto options = testsupport::fast_options();
  options.ca_bundle = (dir / "cert.pem").string();
  run_download(plan, dir / "out", options);
  // The engine asks for HTTP/2 through ALPN; this server only speaks HTTP/1.1, which still works.
  auto offered = server.offered_protocols();
  ASSERT_FALSE(offered.empty());
  EXPECT_EQ(offered.front(), "h2");
  EXPECT_NE(std::find(offered.begin(), offered.end(), "http/1.1"), offered.end());
  EXPECT_EQ(read_file(dir / "out/w.bin"), "weights");
}
