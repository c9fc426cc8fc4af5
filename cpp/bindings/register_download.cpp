// Python surface of the download engine: plans as lists of dicts, options, progress counters that other
// Python threads can poll, cancellation, run_download / verify_files with the GIL released.

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <string>
#include <thread>

#include "bindings.hpp"
#include "modelagent/digest.hpp"
#include "modelagent/download_engine.hpp"
#include "modelagent/download_plan.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/request_signer.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

namespace {

std::string entry_name(size_t index, const std::string& field) {
  return "plan[" + std::to_string(index) + "]" + (field.empty() ? "" : "['" + field + "']");
}

// A non-negative int field of a plan entry, at most `max`; the error names the field.
uint64_t unsigned_field(py::handle value, const std::string& field, uint64_t max) {
  if (!py::isinstance<py::int_>(value) || py::isinstance<py::bool_>(value)) {
    throw py::type_error(field + " must be an int or None");
  }
  if (value.cast<py::int_>() < py::int_(0)) throw py::value_error(field + " must be >= 0");
  if (value.cast<py::int_>() > py::int_(max)) throw py::value_error(field + " is larger than " + std::to_string(max));
  return value.cast<uint64_t>();
}

Digest digest_from_python(py::handle value, size_t index) {
  Digest d;
  if (value.is_none()) return d;
  if (!py::isinstance<py::dict>(value)) {
    throw py::type_error(entry_name(index, "digest") + " must be a dict {kind, value[, parts, part_size | part_lengths]} or None");
  }
  auto dict = py::reinterpret_borrow<py::dict>(value);
  for (auto item : dict) {
    std::string key = py::str(item.first);
    if (key != "kind" && key != "value" && key != "parts" && key != "part_size" && key != "part_lengths") {
      throw py::value_error(entry_name(index, "digest") + " has an unknown key '" + key + "'");
    }
  }
  if (!dict.contains("kind")) throw py::value_error(entry_name(index, "digest") + " needs a 'kind'");
  std::string kind = py::str(dict["kind"]);
  auto parsed = parse_digest_kind(kind);
  if (!parsed) {
    throw py::value_error(entry_name(index, "digest") + "['kind'] '" + kind +
                          "' is not one of none, sha256, git-blob-sha1, md5, md5-multipart");
  }
  d.kind = *parsed;
  if (d.kind != DigestKind::None) {
    if (!dict.contains("value") || !py::isinstance<py::str>(dict["value"])) {
      throw py::value_error(entry_name(index, "digest") + "['value'] must be a string");
    }
    d.value = dict["value"].cast<std::string>();
  }
  if (dict.contains("parts") && !dict["parts"].is_none()) {
    d.parts = static_cast<uint32_t>(unsigned_field(dict["parts"], entry_name(index, "digest") + "['parts']", 100000));
  }
  if (dict.contains("part_size") && !dict["part_size"].is_none()) {
    d.part_size = unsigned_field(dict["part_size"], entry_name(index, "digest") + "['part_size']",
                                 std::numeric_limits<int64_t>::max());
  }
  if (dict.contains("part_lengths") && !dict["part_lengths"].is_none()) {
    std::string field = entry_name(index, "digest") + "['part_lengths']";
    py::handle lengths = dict["part_lengths"];
    if (py::isinstance<py::str>(lengths) || py::isinstance<py::bytes>(lengths) || !py::isinstance<py::sequence>(lengths)) {
      throw py::type_error(field + " must be a list of ints or None");
    }
    size_t part = 0;
    for (py::handle length : lengths) {
      d.part_lengths.push_back(unsigned_field(length, field + "[" + std::to_string(part++) + "]",
                                              std::numeric_limits<int64_t>::max()));
    }
  }
  return d;
}

DownloadPlan plan_from_python(py::handle plan) {
  if (py::isinstance<py::str>(plan) || py::isinstance<py::dict>(plan)) {
    throw py::type_error("plan must be a list of dicts {path, url, size, digest, headers}");
  }
  DownloadPlan out;
  size_t index = 0;
  for (py::handle entry : plan) {
    if (!py::isinstance<py::dict>(entry)) {
      throw py::type_error(entry_name(index, "") + " must be a dict {path, url, size, digest, headers}");
    }
    auto dict = py::reinterpret_borrow<py::dict>(entry);
    for (auto item : dict) {
      std::string key = py::str(item.first);
      if (key != "path" && key != "url" && key != "size" && key != "digest" && key != "headers" &&
          key != "signer") {
        throw py::value_error(entry_name(index, "") + " has an unknown key '" + key + "'");
      }
    }
    PlannedFile f;
    for (const char* required : {"path", "url"}) {
      if (!dict.contains(required) || !py::isinstance<py::str>(dict[required])) {
        throw py::value_error(entry_name(index, required) + " must be a string");
      }
    }
    f.relative_path = dict["path"].cast<std::string>();
    f.url = dict["url"].cast<std::string>();
    if (dict.contains("size") && !dict["size"].is_none()) {
      f.size = unsigned_field(dict["size"], entry_name(index, "size"), std::numeric_limits<int64_t>::max());
    }
    if (dict.contains("digest")) f.digest = digest_from_python(dict["digest"], index);
    if (dict.contains("headers") && !dict["headers"].is_none()) {
      py::object headers = dict["headers"];
      if (py::isinstance<py::dict>(headers)) {
        for (auto item : py::reinterpret_borrow<py::dict>(headers)) {
          f.headers.emplace_back(py::str(item.first), py::str(item.second));
        }
      } else {
        for (py::handle pair : headers) {
          auto t = pair.cast<std::pair<std::string, std::string>>();
          f.headers.push_back(t);
        }
      }
      for (const auto& [name, value] : f.headers) {
        if (name.find_first_of(":\r\n") != std::string::npos || value.find_first_of("\r\n") != std::string::npos) {
          throw py::value_error(entry_name(index, "headers") + " contains an invalid header '" + name + "'");
        }
      }
    }
    if (dict.contains("signer") && !dict["signer"].is_none()) {
      if (!py::isinstance<RequestSigner>(dict["signer"])) {
        throw py::type_error(entry_name(index, "signer") + " must be a modelagent._core.RequestSigner or None");
      }
      f.signer = dict["signer"].cast<std::shared_ptr<RequestSigner>>();
    }
    out.files.push_back(std::move(f));
    ++index;
  }
  return out;
}

py::dict file_result_dict(const FileResult& r) {
  py::dict d;
  d["path"] = r.relative_path;
  d["size"] = r.size;
  d["downloaded"] = r.downloaded;
  d["verified"] = r.verified;
  d["digest"] = r.digest_hex;
  d["note"] = r.note;
  return d;
}

// Runs the download on a helper thread so that this (Python) thread can notice Ctrl-C: a pending
// KeyboardInterrupt cancels the engine, waits for it to leave resumable state behind, then propagates.
DownloadReport run_with_interrupts(const DownloadPlan& plan, const std::filesystem::path& root,
                                   const DownloadOptions& options, CancelToken* cancel, DownloadProgress* progress) {
  CancelToken own_token;
  CancelToken* token = cancel ? cancel : &own_token;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  DownloadReport report;
  std::exception_ptr error;
  std::thread worker;
  {
    py::gil_scoped_release release;
    worker = std::thread([&] {
      try {
        report = run_download(plan, root, options, token, progress);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      cv.notify_all();
    });
  }
  for (;;) {
    {
      py::gil_scoped_release release;
      std::unique_lock<std::mutex> lock(mu);
      if (cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return done; })) break;
    }
    if (PyErr_CheckSignals() != 0) {
      token->cancel();
      {
        py::gil_scoped_release release;
        worker.join();
      }
      throw py::error_already_set();
    }
  }
  {
    py::gil_scoped_release release;
    worker.join();
  }
  if (error) std::rethrow_exception(error);
  return report;
}

// Lets Python code implement a signer (e.g. a plug-in source with its own token scheme); the engine
// calls it with the GIL acquired for each request.
class PyRequestSigner : public RequestSigner {
 public:
  void sign(const std::string& method, const std::string& url, const std::string& body,
            HeaderList& headers) const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const RequestSigner*>(this), "sign");
    if (!override) throw DownloadError("RequestSigner subclass does not implement sign()");
    py::object result = override(method, url, body, headers);
    headers = result.cast<HeaderList>();
  }
  std::string describe() const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const RequestSigner*>(this), "describe");
    return override ? override().cast<std::string>() : std::string("Python request signer");
  }
  bool renew_after_rejection(const HeaderList& rejected) const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const RequestSigner*>(this), "renew_after_rejection");
    return override ? override(rejected).cast<bool>() : false;
  }
};

}  // namespace

py::dict plan_entry_dict(const PlannedFile& f) {
  py::dict digest;
  digest["kind"] = digest_kind_name(f.digest.kind);
  digest["value"] = f.digest.value;
  if (f.digest.kind == DigestKind::Md5Multipart) digest["parts"] = f.digest.parts;
  if (f.digest.part_size != 0) digest["part_size"] = f.digest.part_size;
  if (!f.digest.part_lengths.empty()) digest["part_lengths"] = f.digest.part_lengths;
  py::dict headers;
  for (const auto& [name, value] : f.headers) headers[py::str(name)] = value;
  py::dict entry;
  entry["path"] = f.relative_path;
  entry["url"] = f.url;
  entry["size"] = f.size == kUnknownSize ? py::object(py::none()) : py::cast(f.size);
  entry["digest"] = digest;
  entry["headers"] = headers;
  entry["signer"] = f.signer ? py::cast(std::const_pointer_cast<RequestSigner>(f.signer)) : py::none();
  return entry;
}

void register_download(py::module_& m) {
  py::class_<RequestSigner, PyRequestSigner, std::shared_ptr<RequestSigner>>(
      m, "RequestSigner",
      "Authenticates each request of a plan (attach as plan[i]['signer']). Built-in signers come from the "
      "sources; a Python subclass overrides sign(method, url, body, headers) -> headers.")
      .def(py::init<>())
      .def(
          "sign",
          [](const RequestSigner& self, const std::string& method, const std::string& url, const std::string& body,
             HeaderList headers) {
            {
              py::gil_scoped_release release;
              self.sign(method, url, body, headers);
            }
            return headers;
          },
          py::arg("method"), py::arg("url"), py::arg("body") = "", py::arg("headers") = HeaderList{},
          "Returns `headers` with this signer's authentication headers added.")
      .def("describe", &RequestSigner::describe)
      .def(
          "renew_after_rejection",
          [](const RequestSigner& self, const HeaderList& rejected) {
            py::gil_scoped_release release;
            return self.renew_after_rejection(rejected);
          },
          py::arg("rejected") = HeaderList{},
          "Called once per request after the server rejected this signer's credentials (HTTP 401, or S3's "
          "expired-token errors); `rejected` is the headers that request was sent with. Renew the credentials "
          "and return True to have the request tried once more. The default returns False (fixed keys).")
      .def("__repr__", [](const RequestSigner& self) { return "<RequestSigner " + self.describe() + ">"; });

  py::class_<DownloadOptions>(m, "DownloadOptions",
                              "Tuning of one run_download call; every field has a sensible default.")
      .def(py::init([](py::kwargs kwargs) {
             DownloadOptions o;
             py::object self = py::cast(o);
             for (auto item : kwargs) {
               std::string key = py::str(item.first);
               if (!py::hasattr(self, key.c_str()) || key.rfind("_", 0) == 0) {
                 throw py::type_error("DownloadOptions has no field '" + key + "'");
               }
               self.attr(key.c_str()) = item.second;
             }
             return self.cast<DownloadOptions>();
           }),
           "Keyword arguments set fields by name, e.g. DownloadOptions(max_connections=4).")
      .def_readwrite("max_connections", &DownloadOptions::max_connections)
      .def_readwrite("connections_per_file", &DownloadOptions::connections_per_file)
      .def_readwrite("chunk_size", &DownloadOptions::chunk_size)
      .def_readwrite("bandwidth_limit", &DownloadOptions::bandwidth_limit)
      .def_readwrite("max_attempts", &DownloadOptions::max_attempts)
      .def_readwrite("retry_base_seconds", &DownloadOptions::retry_base_seconds)
      .def_readwrite("retry_cap_seconds", &DownloadOptions::retry_cap_seconds)
      .def_readwrite("total_timeout_seconds", &DownloadOptions::total_timeout_seconds)
      .def_readwrite("connect_timeout_seconds", &DownloadOptions::connect_timeout_seconds)
      .def_readwrite("low_speed_timeout_seconds", &DownloadOptions::low_speed_timeout_seconds)
      .def_readwrite("verify_tls", &DownloadOptions::verify_tls)
      .def_readwrite("ca_bundle", &DownloadOptions::ca_bundle)
      .def_readwrite("user_agent", &DownloadOptions::user_agent)
      .def("__repr__", [](const DownloadOptions& o) {
        return "DownloadOptions(max_connections=" + std::to_string(o.max_connections) +
               ", connections_per_file=" + std::to_string(o.connections_per_file) +
               ", chunk_size=" + std::to_string(o.chunk_size) + ", bandwidth_limit=" + std::to_string(o.bandwidth_limit) +
               ", max_attempts=" + std::to_string(o.max_attempts) + ")";
      });

  py::class_<DownloadProgress, std::unique_ptr<DownloadProgress>>(
      m, "DownloadProgress",
      "Live counters of a run_download call. Pass one in and read it from any thread while the download runs.")
      .def(py::init<>())
      .def_property_readonly("bytes_total", [](const DownloadProgress& p) { return p.bytes_total.load(); })
      .def_property_readonly("bytes_done", [](const DownloadProgress& p) { return p.bytes_done.load(); })
      .def_property_readonly("bytes_fetched", [](const DownloadProgress& p) { return p.bytes_fetched.load(); })
      .def_property_readonly("files_total", [](const DownloadProgress& p) { return p.files_total.load(); })
      .def_property_readonly("files_done", [](const DownloadProgress& p) { return p.files_done.load(); })
      .def_property_readonly("bytes_per_second", [](const DownloadProgress& p) { return p.bytes_per_second.load(); })
      .def_property_readonly("retries", [](const DownloadProgress& p) { return p.retries.load(); })
      .def_property_readonly("rate_limited", [](const DownloadProgress& p) { return p.rate_limited.load(); })
      .def_property_readonly("rate_limit_wait_seconds",
                             [](const DownloadProgress& p) { return p.rate_limit_wait_seconds.load(); })
      .def("__repr__", [](const DownloadProgress& p) {
        return "DownloadProgress(bytes_done=" + std::to_string(p.bytes_done.load()) + "/" +
               std::to_string(p.bytes_total.load()) + ", files_done=" + std::to_string(p.files_done.load()) + "/" +
               std::to_string(p.files_total.load()) + ")";
      });

  py::class_<CancelToken, std::unique_ptr<CancelToken>>(
      m, "CancelToken", "Cancels a running download from any thread; partial files stay resumable.")
      .def(py::init<>())
      .def("cancel", &CancelToken::cancel, "Ask the download to stop (it does within a second).")
      .def_property_readonly("cancelled", &CancelToken::is_cancelled);

  py::class_<FileResult>(m, "FileResult", "Outcome for one planned file.")
      .def_readonly("path", &FileResult::relative_path)
      .def_readonly("size", &FileResult::size)
      .def_readonly("downloaded", &FileResult::downloaded)
      .def_readonly("verified", &FileResult::verified)
      .def_readonly("digest", &FileResult::digest_hex)
      .def_readonly("note", &FileResult::note)
      .def("to_dict", &file_result_dict)
      .def("__repr__", [](const FileResult& r) {
        return "FileResult(path='" + r.relative_path + "', size=" + std::to_string(r.size) +
               ", downloaded=" + (r.downloaded ? "True" : "False") + ", verified=" + (r.verified ? "True" : "False") +
               ")";
      });

  py::class_<DownloadReport>(m, "DownloadReport", "What run_download did.")
      .def_readonly("files", &DownloadReport::files)
      .def_readonly("bytes_fetched", &DownloadReport::bytes_fetched)
      .def_readonly("seconds", &DownloadReport::seconds)
      .def("__repr__", [](const DownloadReport& r) {
        return "DownloadReport(files=" + std::to_string(r.files.size()) +
               ", bytes_fetched=" + std::to_string(r.bytes_fetched) + ", seconds=" + std::to_string(r.seconds) + ")";
      });

  m.def(
      "run_download",
      [](py::handle plan, const std::filesystem::path& root, std::optional<DownloadOptions> options,
         CancelToken* cancel, DownloadProgress* progress) {
        DownloadPlan p = plan_from_python(plan);
        return run_with_interrupts(p, root, options.value_or(DownloadOptions{}), cancel, progress);
      },
      py::arg("plan"), py::arg("root"), py::arg("options") = py::none(), py::arg("cancel") = py::none(),
      py::arg("progress") = py::none(),
      "Downloads every file of the plan (a list of dicts {path, url, size, digest: {kind, value[, parts,"
      " part_size | part_lengths]}, headers}) under root, verifying each. Blocks without holding the GIL; Ctrl-C cancels.");

  m.def(
      "verify_files",
      [](py::handle plan, const std::filesystem::path& root) {
        DownloadPlan p = plan_from_python(plan);
        py::gil_scoped_release release;
        return verify_files(p, root);
      },
      py::arg("plan"), py::arg("root"),
      "Re-hashes the plan's files under root (ignoring verified-stamps); one FileResult per file. Read-only.");

  m.def(
      "check_safe_relative_path",
      [](const std::filesystem::path& root, const std::string& relative_path) {
        check_safe_relative_path(root, relative_path);
      },
      py::arg("root"), py::arg("relative_path"), "Raises UnsafePathError unless relative_path is safe under root.");

  m.def(
      "file_digest",
      [](const std::filesystem::path& path, const std::string& kind) {
        auto parsed = parse_digest_kind(kind);
        if (!parsed || *parsed == DigestKind::None || *parsed == DigestKind::Md5Multipart) {
          throw py::value_error("file_digest kind must be sha256, git-blob-sha1 or md5, not '" + kind + "'");
        }
        ExpectedDigest expected;
        expected.kind = *parsed;
        py::gil_scoped_release release;
        return hash_file(path, expected).hex;
      },
      py::arg("path"), py::arg("kind") = "sha256", "Hex digest of a file (one streaming read).");

  m.def("bytes_rehashed_from_disk", &bytes_rehashed_from_disk,
        "Process-wide count of bytes re-read from disk to verify existing files.");
}

}  // namespace modelagent::bindings
