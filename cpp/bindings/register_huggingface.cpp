// Bindings of the Hugging Face source (cpp/include/modelagent/huggingface.hpp) and the glob matcher.

#include <pybind11/stl.h>

#include <optional>

#include "bindings.hpp"
#include "modelagent/digest.hpp"
#include "modelagent/glob_match.hpp"
#include "modelagent/huggingface.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

std::optional<uint64_t> optional_size(uint64_t size) {
  return size == kUnknownSize ? std::nullopt : std::optional<uint64_t>(size);
}

}  // namespace

void register_huggingface(py::module_& m) {
  m.def("glob_match", &glob_match, py::arg("pattern"), py::arg("path"),
        "True when the whole '/'-separated path matches the glob pattern ('*' and '?' stay within one path "
        "segment, '**' crosses segments, '[...]' classes). Raises ValueError for a malformed pattern.");

  py::class_<hf::RepoFile>(m, "HfFile", "One file of a Hugging Face repository at a commit.")
      .def(py::init([](std::string path, std::optional<uint64_t> size, std::string blob_id, std::string lfs_sha256) {
             hf::RepoFile f;
             f.path = std::move(path);
             f.size = size.value_or(kUnknownSize);
             f.blob_id = std::move(blob_id);
             f.lfs_sha256 = std::move(lfs_sha256);
             return f;
           }),
           py::arg("path"), py::arg("size") = py::none(), py::arg("blob_id") = "", py::arg("lfs_sha256") = "")
      .def_readonly("path", &hf::RepoFile::path)
      .def_property_readonly("size", [](const hf::RepoFile& f) { return optional_size(f.size); })
      .def_readonly("blob_id", &hf::RepoFile::blob_id, "git blob SHA-1 (hex), '' when unknown")
      .def_readonly("lfs_sha256", &hf::RepoFile::lfs_sha256, "SHA-256 (hex) for LFS files, '' otherwise")
      .def_property_readonly(
          "digest_kind", [](const hf::RepoFile& f) { return digest_kind_name(f.digest().kind); },
          "'sha256' (LFS), 'git-blob-sha1' (small files) or 'none'")
      .def_property_readonly("digest_value", [](const hf::RepoFile& f) { return f.digest().value; })
      .def("__eq__",
           [](const hf::RepoFile& a, const hf::RepoFile& b) {
             return a.path == b.path && a.size == b.size && a.blob_id == b.blob_id && a.lfs_sha256 == b.lfs_sha256;
           })
      .def("__repr__", [](const hf::RepoFile& f) {
        return "HfFile(path=" + py::repr(py::str(f.path)).cast<std::string>() +
               ", size=" + (f.size == kUnknownSize ? std::string("None") : std::to_string(f.size)) + ")";
      });

  py::class_<hf::ClientOptions>(m, "HfClientOptions", "Endpoint, token, retries and TLS settings for hub API calls.")
      .def(py::init([](std::string endpoint, std::string token, double timeout, bool verify_tls, std::string ca_bundle,
                       int max_attempts, double retry_base_seconds, double retry_cap_seconds,
                       double max_retry_seconds, std::string user_agent) {
             hf::ClientOptions o;
             while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
             o.endpoint = endpoint.empty() ? hf::endpoint_from_env() : endpoint;
             o.token = std::move(token);
             o.request_timeout_seconds = timeout;
             o.http.verify_tls = verify_tls;
             o.http.ca_bundle = std::move(ca_bundle);
             o.http.user_agent = std::move(user_agent);
             o.retry.max_attempts = max_attempts;
             o.retry.base_seconds = retry_base_seconds;
             o.retry.cap_seconds = retry_cap_seconds;
             o.retry.max_total_seconds = max_retry_seconds;
             return o;
           }),
           py::kw_only(), py::arg("endpoint") = "", py::arg("token") = "", py::arg("timeout") = 60.0,
           py::arg("verify_tls") = true, py::arg("ca_bundle") = "", py::arg("max_attempts") = 6,
           py::arg("retry_base_seconds") = 0.5, py::arg("retry_cap_seconds") = 30.0,
           py::arg("max_retry_seconds") = 300.0, py::arg("user_agent") = "")
      .def_property_readonly("endpoint", [](const hf::ClientOptions& o) { return o.endpoint; })
      .def_property_readonly("has_token", [](const hf::ClientOptions& o) { return !o.token.empty(); })
      .def("__repr__", [](const hf::ClientOptions& o) {
        return "HfClientOptions(endpoint='" + o.endpoint + "', token=" + (o.token.empty() ? "None" : "'***'") + ")";
      });

  m.def(
      "hf_parse_uri",
      [](const std::string& uri) {
        auto ref = hf::parse_uri(uri);
        return py::make_tuple(ref.repo_id, ref.revision);
      },
      py::arg("uri"), "hf://org/name[@revision] -> (repo_id, revision); raises InvalidStorageUri.");
  m.def("hf_is_commit_hash", [](const std::string& s) { return hf::is_commit_hash(s); }, py::arg("revision"));
  m.def("hf_endpoint", &hf::endpoint_from_env, "HF_ENDPOINT without trailing '/', or https://huggingface.co.");
  m.def(
      "hf_token",
      [](std::optional<std::string> explicit_token) -> std::optional<std::string> {
        std::string token = hf::resolve_token(explicit_token.value_or(""));
        return token.empty() ? std::nullopt : std::optional<std::string>(token);
      },
      py::arg("explicit_token") = py::none(),
      "The token to use: the explicit one, else HF_TOKEN, HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH, $HF_HOME/token.");
  m.def("hf_resolve_url", &hf::resolve_url, py::arg("endpoint"), py::arg("repo_id"), py::arg("commit"), py::arg("path"));

  m.def("hf_resolve_commit", &hf::resolve_commit, py::arg("options"), py::arg("repo_id"), py::arg("revision"),
        py::arg("cancel") = nullptr, py::arg("progress") = nullptr, py::call_guard<py::gil_scoped_release>(),
        "The 40-hex commit a revision points to (GET /api/models/{repo}/revision/{rev}).");
  m.def("hf_list_files", &hf::list_files, py::arg("options"), py::arg("repo_id"), py::arg("commit"),
        py::arg("cancel") = nullptr, py::arg("progress") = nullptr, py::call_guard<py::gil_scoped_release>(),
        "Every file of the repository at `commit` (tree API, all pages).");

  m.def("hf_check_file", &hf::check_file, py::arg("options"), py::arg("repo_id"), py::arg("commit"), py::arg("path"),
        py::arg("cancel") = nullptr, py::arg("progress") = nullptr, py::call_guard<py::gil_scoped_release>(),
        "HEAD of a file's resolve URL; raises the hub's typed error (GatedRepoError, EntryNotFoundError, ...).");

  m.def(
      "hf_select_files",
      [](const std::vector<hf::RepoFile>& files, std::vector<std::string> include, std::vector<std::string> exclude,
         bool default_excludes) {
        hf::FileFilter filter{std::move(include), std::move(exclude), default_excludes};
        auto selection = hf::select_files(files, filter);
        std::vector<std::pair<std::string, std::string>> excluded;
        excluded.reserve(selection.excluded.size());
        for (auto& e : selection.excluded) excluded.emplace_back(std::move(e.path), std::move(e.reason));
        return py::make_tuple(selection.selected, excluded);
      },
      py::arg("files"), py::arg("include") = std::vector<std::string>{},
      py::arg("exclude") = std::vector<std::string>{}, py::arg("default_excludes") = true,
      "-> (selected files, [(path, reason)] of excluded files); raises ValueError for a malformed pattern.");

  m.def(
      "hf_build_plan",
      [](const std::string& endpoint, const std::string& repo_id, const std::string& commit,
         const std::vector<hf::RepoFile>& files, const std::string& token) {
        DownloadPlan plan = hf::build_plan(endpoint, repo_id, commit, files, token);
        py::list out;
        for (const auto& f : plan.files) out.append(plan_entry_dict(f));
        return out;
      },
      py::arg("endpoint"), py::arg("repo_id"), py::arg("commit"), py::arg("files"), py::arg("token") = "",
      "Download-plan entries {path, url, size, digest: {kind, value}, headers} for the engine.");
}

}  // namespace modelagent::bindings
