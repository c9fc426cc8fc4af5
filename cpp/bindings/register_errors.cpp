// Maps the core's exception hierarchy onto Python exception classes.
// pybind11 tries translators in reverse registration order, so the base is registered first.

#include "bindings.hpp"
#include "modelagent/errors.hpp"

namespace py = pybind11;

namespace modelagent::bindings {

void register_errors(py::module_& m) {
  auto& base = py::register_exception<Error>(m, "ModelAgentError", PyExc_Exception);
  py::register_exception<InvalidStorageUri>(m, "InvalidStorageUri", base.ptr());
  py::register_exception<ModelConfigError>(m, "ModelConfigError", base.ptr());
  py::register_exception<SafetensorsError>(m, "SafetensorsError", base.ptr());
  py::register_exception<ModelEntryError>(m, "ModelEntryError", base.ptr());
  // Download errors. HttpStatusError and subclasses carry .status/.url set by the translator below.
  auto& download = py::register_exception<DownloadError>(m, "DownloadError", base.ptr());
  auto& http = py::register_exception<HttpStatusError>(m, "HttpStatusError", download.ptr());
  auto& rate_limited = py::register_exception<RateLimitedError>(m, "RateLimitedError", http.ptr());
  auto& repo_not_found =
      py::register_exception<RepositoryNotFoundError>(m, "RepositoryNotFoundError", http.ptr());
  auto& gated = py::register_exception<GatedRepoError>(m, "GatedRepoError", repo_not_found.ptr());
  auto& revision_not_found =
      py::register_exception<RevisionNotFoundError>(m, "RevisionNotFoundError", http.ptr());
  auto& entry_not_found = py::register_exception<EntryNotFoundError>(m, "EntryNotFoundError", http.ptr());
  auto& unauthorized = py::register_exception<UnauthorizedError>(m, "UnauthorizedError", http.ptr());
  py::register_exception<VerificationError>(m, "VerificationError", download.ptr());
  py::register_exception<DiskSpaceError>(m, "DiskSpaceError", download.ptr());
  py::register_exception<UnsafePathError>(m, "UnsafePathError", download.ptr());
  py::register_exception<CancelledError>(m, "CancelledError", download.ptr());
  py::register_exception<CredentialsError>(m, "CredentialsError", download.ptr());

  // HTTP errors also expose the status, URL and (for 429) the requested wait as attributes.
  static PyObject* http_types[] = {http.ptr(), rate_limited.ptr(), repo_not_found.ptr(), gated.ptr(),
                                   revision_not_found.ptr(), entry_not_found.ptr(), unauthorized.ptr()};
  py::register_exception_translator([](std::exception_ptr p) {
    auto raise = [](PyObject* type, const HttpStatusError& e, double retry_after) {
      py::object instance = py::reinterpret_borrow<py::object>(type)(e.what());
      instance.attr("status") = e.status();
      instance.attr("url") = e.url();
      instance.attr("retry_after") = retry_after;
      PyErr_SetObject(type, instance.ptr());
    };
    try {
      if (p) std::rethrow_exception(p);
    } catch (const RateLimitedError& e) {
      raise(http_types[1], e, e.retry_after());
    } catch (const GatedRepoError& e) {
      raise(http_types[3], e, 0);
    } catch (const RepositoryNotFoundError& e) {
      raise(http_types[2], e, 0);
    } catch (const RevisionNotFoundError& e) {
      raise(http_types[4], e, 0);
    } catch (const EntryNotFoundError& e) {
      raise(http_types[5], e, 0);
    } catch (const UnauthorizedError& e) {
      raise(http_types[6], e, 0);
    } catch (const HttpStatusError& e) {
      raise(http_types[0], e, 0);
    }
  });
}

}  // namespace modelagent::bindings
