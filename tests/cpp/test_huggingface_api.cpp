#include <gtest/gtest.h>

#include <string>

#include "modelagent/errors.hpp"
#include "modelagent/huggingface.hpp"
#include "support/hf_test_server.hpp"

namespace hf = modelagent::hf;
using hf_test::Request;
using hf_test::Response;
using hf_test::Server;

namespace {

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";
const std::string kSha1 = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
const std::string kSha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

hf::ClientOptions client(const Server& server, const std::string& token = "") {
  hf::ClientOptions o;
  o.endpoint = server.base_url();
  o.token = token;
  o.retry.base_seconds = 0.01;
  o.retry.cap_seconds = 0.02;
  o.request_timeout_seconds = 20;
  return o;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(HfParse, CommitFromRepoInfo) {
  EXPECT_EQ(hf::parse_commit("{\"id\":\"org/name\",\"sha\":\"" + kCommit + "\",\"siblings\":[]}", "U"), kCommit);
  std::string upper = kCommit;
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(hf::parse_commit("{\"sha\":\"" + upper + "\"}", "U"), kCommit);
  for (std::string bad : {"not json", "[]", "{}", "{\"sha\":12}", "{\"sha\":\"main\"}"}) {
    std::string what = error_of([&] { hf::parse_commit(bad, "http://hub/api/models/a/b/revision/main"); });
    EXPECT_NE(what.find("http://hub/api/models/a/b/revision/main"), std::string::npos) << bad << " -> " << what;
  }
}

TEST(HfParse, TreeEntries) {
  std::string body = R"([
    {"type":"directory","oid":")" + kSha1 + R"(","path":"sub"},
    {"type":"file","oid":")" + kSha1 + R"(","size":0,"path":"empty.txt"},
    {"type":"file","oid":")" + kSha1 + R"(","size":1234,"path":"sub/model.safetensors",
     "lfs":{"oid":")" + kSha256 + R"(","size":1234,"pointerSize":134},"xetHash":"ignored"},
    {"type":"file","path":"nosize.bin"}
  ])";
  auto files = hf::parse_tree_page(body, "U");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, "empty.txt");
  EXPECT_EQ(files[0].size, 0u);
  EXPECT_EQ(files[0].digest().kind, modelagent::DigestKind::GitBlobSha1);
  EXPECT_EQ(files[0].digest().value, kSha1);
  EXPECT_EQ(files[1].path, "sub/model.safetensors");
  EXPECT_EQ(files[1].size, 1234u);
  EXPECT_EQ(files[1].digest().kind, modelagent::DigestKind::Sha256);
  EXPECT_EQ(files[1].digest().value, kSha256);
  EXPECT_EQ(files[2].size, modelagent::kUnknownSize);
  EXPECT_EQ(files[2].digest().kind, modelagent::DigestKind::None);
}

TEST(HfParse, MalformedTreeEntriesNameTheEntryAndUrl) {
  const std::string url = "http://hub/api/models/a/b/tree/c";
  const std::string bad[] = {
      "{}",
      "[1]",
      R"([{"path":"x"}])",
      R"([{"type":"file"}])",
      R"([{"type":"file","path":""}])",
      R"([{"type":"file","path":"x","size":-1}])",
      R"([{"type":"file","path":"x","size":"12"}])",
      R"([{"type":"file","path":"x","oid":"zz"}])",
      R"([{"type":"file","path":"x","lfs":{"oid":"short"}}])",
      R"([{"type":"file","path":"x","lfs":"yes"}])",
  };
  for (const auto& body : bad) {
    std::string what = error_of([&] { hf::parse_tree_page(body, url); });
    EXPECT_NE(what.find(url), std::string::npos) << body << " -> " << what;
  }
  std::string what = error_of([&] { hf::parse_tree_page(R"([{"type":"file","path":"ok"},{"type":"file","path":"x","size":-5}])", url); });
  EXPECT_NE(what.find("#1"), std::string::npos) << what;
  EXPECT_NE(what.find("'x'"), std::string::npos) << what;
}

TEST(HfParse, LinkHeaderNextPage) {
  const std::string cur = "http://hub:1/api/models/a/b/tree/c?recursive=true";
  EXPECT_EQ(hf::next_page_url("<http://hub:1/api/next?cursor=abc>; rel=\"next\"", cur), "http://hub:1/api/next?cursor=abc");
  EXPECT_EQ(hf::next_page_url("</api/models/a/b/tree/c?cursor=x%2Cy>; rel=next", cur),
            "http://hub:1/api/models/a/b/tree/c?cursor=x%2Cy");
  EXPECT_EQ(hf::next_page_url("<http://hub:1/p1>; rel=\"prev\", <http://hub:1/p3>; rel=\"next\"", cur), "http://hub:1/p3");
  EXPECT_EQ(hf::next_page_url("<http://hub:1/p3>; title=\"a, b\"; REL=\"Next\"", cur), "http://hub:1/p3");
  EXPECT_EQ(hf::next_page_url("<http://hub:1/p3>; rel=\"prev next\"", cur), "http://hub:1/p3");
  EXPECT_EQ(hf::next_page_url("<http://hub:1/p1>; rel=\"prev\"", cur), "");
  EXPECT_EQ(hf::next_page_url("<http://hub:1/x>; rel=\"nextish\"", cur), "");
  EXPECT_EQ(hf::next_page_url("", cur), "");
  EXPECT_EQ(hf::next_page_url("garbage", cur), "");
}

TEST(HfClient, ResolvesRevisionWithEncodingAndToken) {
  Server hub([](const Request& r) {
    return Response{200, {{"Content-Type", "application/json"}}, "{\"id\":\"org/name\",\"sha\":\"" + kCommit + "\"}"};
  });
  EXPECT_EQ(hf::resolve_commit(client(hub, "tok"), "org/name", "refs/pr/1"), kCommit);
  auto seen = hub.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/api/models/org/name/revision/refs%2Fpr%2F1");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer tok");

  hf::resolve_commit(client(hub), "org/name", "main");
  EXPECT_FALSE(hub.requests().at(1).has_header("authorization"));
}

TEST(HfClient, ResolveErrorsAreTyped) {
  Server hub([](const Request& r) {
    if (r.target.find("/revision/nope") != std::string::npos) {
      return Response{404, {{"X-Error-Code", "RevisionNotFound"}, {"X-Error-Message", "Invalid rev id: nope"}}, ""};
    }
    return Response{401, {{"X-Error-Code", "RepoNotFound"}}, ""};
  });
  EXPECT_THROW(hf::resolve_commit(client(hub), "org/name", "nope"), modelagent::RevisionNotFoundError);
  EXPECT_THROW(hf::resolve_commit(client(hub), "org/private", "main"), modelagent::RepositoryNotFoundError);
}

TEST(HfClient, ListsAllPagesFollowingLinkHeaders) {
  std::string cross_origin_base;
  Server other([&](const Request& r) {
    return Response{200, {}, R"([{"type":"file","oid":")" + kSha1 + R"(","size":3,"path":"c.txt"}])"};
  }, "127.0.0.2");
  cross_origin_base = other.base_url();
  Server hub([&](const Request& r) {
    if (r.target.find("cursor=2") != std::string::npos) {
      return Response{200,
                      {{"Link", "<" + cross_origin_base + "/api/models/org/name/tree/x?cursor=3>; rel=\"next\""}},
                      R"([{"type":"file","oid":")" + kSha1 + R"(","size":2,"path":"b/b.txt"}])"};
    }
    return Response{200,
                    {{"Link", "</api/models/org/name/tree/" + kCommit + "?recursive=true&expand=false&cursor=2>; rel=\"next\""}},
                    R"([{"type":"directory","path":"b"},{"type":"file","oid":")" + kSha1 + R"(","size":1,"path":"a.txt"}])"};
  });
  auto files = hf::list_files(client(hub, "tok"), "org/name", kCommit);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, "a.txt");
  EXPECT_EQ(files[1].path, "b/b.txt");
  EXPECT_EQ(files[2].path, "c.txt");
  auto seen = hub.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].target, "/api/models/org/name/tree/" + kCommit + "?recursive=true&expand=false");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer tok");
  EXPECT_EQ(seen[1].header("authorization"), "Bearer tok");
  // The token is not sent to a page on another origin.
  ASSERT_EQ(other.requests().size(), 1u);
  EXPECT_FALSE(other.requests()[0].has_header("authorization"));
}

TEST(HfClient, PaginationLoopIsAnError) {
  Server hub([](const Request& r) {
    return Response{200, {{"Link", "</same>; rel=\"next\""}}, "[]"};
  });
  std::string what = error_of([&] { hf::list_files(client(hub), "org/name", kCommit); });
  EXPECT_NE(what.find("does not end"), std::string::npos) << what;
  EXPECT_NE(what.find("org/name"), std::string::npos) << what;
  EXPECT_EQ(hub.request_count(), 2u);
}

TEST(HfClient, TreeErrorsAreTyped) {
  Server hub([](const Request& r) { return Response{404, {{"X-Error-Code", "RevisionNotFound"}}, ""}; });
  EXPECT_THROW(hf::list_files(client(hub), "org/name", kCommit), modelagent::RevisionNotFoundError);
}

TEST(HfClient, HeadCompletesFilesWithoutSize) {
  Server hub([](const Request& r) {
    if (r.method == "GET") {
      return Response{200, {}, R"([{"type":"file","path":"big.safetensors"},{"type":"file","path":"small.json"},
                                  {"type":"file","path":"cached.txt"}])"};
    }
    if (r.target.find("big.safetensors") != std::string::npos) {
      return Response{302,
                      {{"Location", "http://127.0.0.2:1/cdn/blob"},
                       {"X-Linked-Size", "5000"},
                       {"X-Linked-Etag", "\"" + kSha256 + "\""},
                       {"X-Repo-Commit", kCommit}},
                      ""};
    }
    if (r.target.find("/resolve/" + kCommit + "/cached.txt") != std::string::npos) {
      return Response{307, {{"Location", "/api/resolve-cache/models/org/name/" + kCommit + "/cached.txt"}}, ""};
    }
    // small.json and the resolve-cache target answer directly.
    return Response{200, {{"ETag", "W/\"" + kSha1 + "\""}, {"Content-Length", "17"}}, ""};
  });
  auto files = hf::list_files(client(hub, "tok"), "org/name", kCommit);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].size, 5000u);
  EXPECT_EQ(files[0].lfs_sha256, kSha256);
  EXPECT_EQ(files[1].size, 17u);
  EXPECT_EQ(files[1].blob_id, kSha1);
  EXPECT_EQ(files[2].size, 17u);
  for (const auto& r : hub.requests()) {
    if (r.method != "HEAD") continue;
    EXPECT_EQ(r.header("accept-encoding"), "identity");
    EXPECT_EQ(r.header("authorization"), "Bearer tok");
  }
  EXPECT_EQ(hub.requests().at(1).target, "/org/name/resolve/" + kCommit + "/big.safetensors");
}

TEST(HfClient, HeadWithoutSizeIsAnErrorNamingTheFile) {
  Server hub([](const Request& r) {
    if (r.method == "GET") return Response{200, {}, R"([{"type":"file","path":"weird.bin"}])"};
    return Response{302, {{"Location", "http://127.0.0.2:1/elsewhere"}}, ""};
  });
  std::string what = error_of([&] { hf::list_files(client(hub), "org/name", kCommit); });
  EXPECT_NE(what.find("weird.bin"), std::string::npos) << what;
}

TEST(HfClient, CheckFileRaisesTheHubsTypedError) {
  Server hub([](const Request& r) {
    if (r.target.find("gated") != std::string::npos) {
      return Response{403, {{"X-Error-Code", "GatedRepo"}, {"X-Error-Message", "Access restricted"}}, ""};
    }
    if (r.target.find("missing") != std::string::npos) {
      return Response{404, {{"X-Error-Code", "EntryNotFound"}, {"X-Repo-Commit", kCommit}}, ""};
    }
    return Response{302, {{"Location", "http://127.0.0.2:1/blob"}, {"X-Linked-Size", "5"}}, ""};
  });
  EXPECT_THROW(hf::check_file(client(hub), "org/gated", kCommit, "model.safetensors"), modelagent::GatedRepoError);
  try {
    hf::check_file(client(hub), "org/name", kCommit, "sub/missing.bin");
    FAIL() << "no error";
  } catch (const modelagent::EntryNotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("sub/missing.bin"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(hf::check_file(client(hub), "org/name", kCommit, "ok.safetensors"));
  for (const auto& r : hub.requests()) {
    EXPECT_EQ(r.method, "HEAD");
  }
}
