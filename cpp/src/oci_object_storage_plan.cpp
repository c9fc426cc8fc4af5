// Object names → destination paths, the digest each object is verified against, and the download plan.

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include "modelagent/ascii_text.hpp"
#include "modelagent/digest.hpp"
#include "modelagent/errors.hpp"
#include "modelagent/glob_match.hpp"
#include "modelagent/oci_object_storage.hpp"
#include "modelagent/parallel_for.hpp"
#include "modelagent/path_safety.hpp"

namespace modelagent::oci {

namespace {

constexpr size_t kMaxNamesInMessage = 10;

bool ends_with(const std::string& s, char c) { return !s.empty() && s.back() == c; }

bool is_archived(const ObjectSummary& o) {
  if (o.archival_state == "Archived" || o.archival_state == "Restoring") return true;
  return o.storage_tier == "Archive" && o.archival_state != "Restored";
}

bool is_multipart_value(const std::string& md5) { return md5.find('-') != std::string::npos; }

std::optional<Digest> plain_md5(const std::string& value) {
  if (value.empty() || !hex_from_hex_or_base64(value, 16)) return std::nullopt;
  Digest d;
  d.kind = DigestKind::Md5;
  d.value = value;
  return d;
}

std::string list_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMaxNamesInMessage; ++i) out += (i ? ", '" : "'") + printable(names[i]) + "'";
  if (names.size() > kMaxNamesInMessage) out += " and " + std::to_string(names.size() - kMaxNamesInMessage) + " more";
  return out;
}

}  // namespace

Selection select_objects(const std::vector<ObjectSummary>& objects, const std::string& prefix,
                         const ObjectFilter& filter) {
  for (const auto& p : filter.include) validate_glob(p);
  for (const auto& p : filter.exclude) validate_glob(p);
  const std::string dir = directory_prefix(prefix);
  Selection out;
  std::vector<std::string> archived;
  for (const auto& o : objects) {
    if (ends_with(o.name, '/') && o.size == 0) {
      out.excluded.push_back({o.name, "folder marker"});
      continue;
    }
    if (o.name.compare(0, dir.size(), dir) != 0) {
      out.excluded.push_back({o.name, "outside the prefix '" + dir + "'"});
      continue;
    }
    std::string path = o.name.substr(dir.size());
    if (ends_with(path, '/')) {
      out.excluded.push_back({o.name, "name ends with '/' but the object is not empty (not a file name)"});
      continue;
    }
    try {
      check_safe_relative_name(path);
    } catch (const UnsafePathError& e) {
      throw UnsafePathError("refusing OCI object '" + printable(o.name) + "': " + e.what());
    }
    if (path == kStateDirName || path.rfind(std::string(kStateDirName) + "/", 0) == 0) {
      out.excluded.push_back({o.name, "reserved path"});
      continue;
    }
    if (!filter.include.empty() && !glob_match_any(filter.include, path)) {
      out.excluded.push_back({o.name, "not included"});
      continue;
    }
    if (auto hit = std::find_if(filter.exclude.begin(), filter.exclude.end(),
                                [&](const std::string& p) { return glob_match(p, path); });
        hit != filter.exclude.end()) {
      out.excluded.push_back({o.name, "excluded by pattern '" + *hit + "'"});
      continue;
    }
    if (is_archived(o)) archived.push_back(o.name);
    out.selected.push_back({o, std::move(path)});
  }
  if (!archived.empty()) {
    throw DownloadError(std::to_string(archived.size()) + " object(s) are in the Archive tier and must be restored " +
                        "before they can be downloaded: " + list_names(archived));
  }
  return out;
}

bool needs_head(const ObjectSummary& object) { return object.md5.empty() || is_multipart_value(object.md5); }

DigestChoice choose_digest(const ObjectSummary& object, const ObjectHead* head) {
  DigestChoice out;
  std::string problems;
  if (head != nullptr && !head->meta_md5.empty()) {
    if (auto d = plain_md5(head->meta_md5)) {
      out.digest = *d;
      out.source = "opc-meta-md5";
      return out;
    }
    problems += "opc-meta-md5 '" + head->meta_md5 + "' is not an MD5; ";
  }
  std::string single = head != nullptr && !head->content_md5.empty() ? head->content_md5 : "";
  std::string single_source = "Content-MD5";
  if (single.empty() && !object.md5.empty() && !is_multipart_value(object.md5)) {
    single = object.md5;
    single_source = "listing md5";
  }
  if (!single.empty()) {
    if (auto d = plain_md5(single)) {
      out.digest = *d;
      out.source = single_source;
      return out;
    }
    problems += single_source + " '" + single + "' is not an MD5; ";
  }
  std::string multipart = head != nullptr ? head->multipart_md5 : "";
  if (multipart.empty() && is_multipart_value(object.md5)) multipart = object.md5;
  if (!multipart.empty()) {
    Digest d;
    d.kind = DigestKind::Md5Multipart;
    d.value = multipart;
    try {
      normalize_digest(d, object.size, "'" + object.name + "'");
      out.digest = d;
      out.source = "opc-multipart-md5";
      return out;
    } catch (const DownloadError& e) {
      problems += std::string("unusable opc-multipart-md5: ") + e.what() + "; ";
    }
  }
  out.digest = Digest{};
  if (problems.empty()) {
    out.unverifiable = "the service reports no Content-MD5, opc-multipart-md5 or opc-meta-md5 for it";
  } else {
    problems.resize(problems.size() - 2);
    out.unverifiable = problems;
  }
  return out;
}

Plan plan_objects(const std::string& endpoint, const std::string& namespace_name, const std::string& bucket,
                  const Selection& selection, const std::map<std::string, ObjectHead>& heads,
                  std::shared_ptr<const RequestSigner> signer) {
  Plan out;
  out.endpoint = endpoint;
  out.namespace_name = namespace_name;
  out.excluded = selection.excluded;
  out.plan.files.reserve(selection.selected.size());
  for (const auto& s : selection.selected) {
    auto head = heads.find(s.object.name);
    DigestChoice choice = choose_digest(s.object, head == heads.end() ? nullptr : &head->second);
    PlannedFile f;
    f.relative_path = s.relative_path;
    f.url = object_url(endpoint, namespace_name, bucket, s.object.name);
    f.signer = signer;
    f.size = s.object.size;
    f.digest = choice.digest;
    // A re-upload while we read would mix two versions' bytes; If-Match turns it into a 412 instead.
    if (!s.object.etag.empty()) f.headers.emplace_back("If-Match", s.object.etag);
    if (choice.digest.kind == DigestKind::None) out.unverifiable.push_back({s.relative_path, choice.unverifiable});
    out.plan.files.push_back(std::move(f));
    out.objects.push_back(s.object);
  }
  return out;
}

Plan build_plan(const ClientOptions& options, const Location& location, const ObjectFilter& filter,
                CancelToken* cancel, DownloadProgress* progress) {
  std::string ns = location.namespace_name.empty() ? get_namespace(options, cancel, progress) : location.namespace_name;
  const std::string dir = directory_prefix(location.prefix);
  std::vector<ObjectSummary> objects = list_objects(options, ns, location.bucket, dir, cancel, progress);
  size_t files = std::count_if(objects.begin(), objects.end(),
                               [](const ObjectSummary& o) { return !(ends_with(o.name, '/') && o.size == 0); });
  if (files == 0) {
    throw DownloadError("no objects under oci://n/" + ns + "/b/" + location.bucket + "/o/" + dir +
                        (objects.empty() ? std::string() : " (only folder markers)") +
                        " (the prefix is a directory: objects must be named '" + dir + "...')");
  }
  Selection selection = select_objects(objects, location.prefix, filter);

  std::vector<const ObjectSummary*> to_head;
  for (const auto& s : selection.selected) {
    if (needs_head(s.object)) to_head.push_back(&s.object);
  }
  std::map<std::string, ObjectHead> heads;
  if (!to_head.empty()) {
    std::vector<ObjectHead> results(to_head.size());
    parallel_for(to_head.size(), options.head_concurrency, [&](size_t i) {
      results[i] = head_object(options, ns, location.bucket, to_head[i]->name, cancel, progress);
    });
    for (size_t i = 0; i < to_head.size(); ++i) heads.emplace(to_head[i]->name, std::move(results[i]));
  }
  return plan_objects(options.endpoint, ns, location.bucket, selection, heads, options.signer);
}

}  // namespace modelagent::oci
