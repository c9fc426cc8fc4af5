"""modelagent.Metrics: the Python face of the C++ registry, failure classification and the exposition.

``parse_exposition`` is a strict parser of the Prometheus text format 0.0.4 (prometheus_client is not a
dependency); test_server.py reuses it.
"""

from __future__ import annotations

import errno
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import modelagent
from modelagent import _core
from modelagent.metrics import CONTENT_TYPE, FAILURE_REASONS, PHASES, Metrics, failure_reason

# ---- a strict parser of the text format ----

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)(?: (-?\d+))?$")
_LABEL = re.compile(rf'({_NAME})="((?:[^"\\]|\\.)*)"(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    def family_of(self, sample_name: str) -> str | None:
        if sample_name in self.types:
            return sample_name
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample_name[: -len(suffix)]
            if sample_name.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        return None

    def find(self, metric: str, /, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, metric: str, /, **labels: str) -> float:
        found = self.find(metric, **labels)
        assert len(found) == 1, f"expected one sample of {metric} {labels}, found {found}"
        return found[0].value

    def has_family(self, name: str) -> bool:
        return any(self.family_of(s.name) == name for s in self.samples)


def _unescape(value: str) -> str:
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            i += 1
            nxt = value[i]
            if nxt == "n":
                out.append("\n")
            elif nxt in '\\"':
                out.append(nxt)
            else:
                raise ValueError(f"bad escape \\{nxt}")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError(f"malformed labels: {text!r}")
        if m.group(1) in labels:
            raise ValueError(f"label repeated: {m.group(1)}")
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return labels


def parse_exposition(text: str) -> Exposition:
    """Parse the text format strictly; raises ValueError on anything malformed."""
    if text and not text.endswith("\n"):
        raise ValueError("exposition does not end with a newline")
    out = Exposition()
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            name, _, rest = line[7:].partition(" ")
            if line.startswith("# TYPE "):
                if rest not in _TYPES:
                    raise ValueError(f"unknown type in {line!r}")
                if name in out.types:
                    raise ValueError(f"TYPE repeated for {name}")
                out.types[name] = rest
            else:
                out.help[name] = rest
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"malformed sample {line!r}")
        name, label_text, value = m.group(1), m.group(2), m.group(3)
        if out.family_of(name) is None:
            raise ValueError(f"sample before its TYPE: {line!r}")
        number = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(value)
        out.samples.append(Sample(name, _parse_labels(label_text or ""), float(value) if number is None else number))
    for name, kind in out.types.items():
        if kind != "histogram":
            continue
        for count in [s for s in out.samples if s.name == f"{name}_count"]:
            buckets = out.find(f"{name}_bucket", **count.labels)
            bounds = [float(b.labels["le"]) for b in buckets]
            if bounds != sorted(bounds) or bounds[-1] != math.inf:
                raise ValueError(f"{name}: buckets not increasing up to +Inf")
            counts = [b.value for b in buckets]
            if counts != sorted(counts) or counts[-1] != count.value:
                raise ValueError(f"{name}: cumulative bucket counts inconsistent with _count")
    return out


def scrape(metrics: Metrics) -> Exposition:
    return parse_exposition(metrics.exposition())


MODEL = {"model_type": "BaseModel", "namespace": "team-a", "name": "llama"}
CLUSTER_MODEL = {"model_type": "ClusterBaseModel", "namespace": "", "name": "qwen"}


# ---- the parser itself ----


def test_parser_rejects_malformed_text() -> None:
    with pytest.raises(ValueError):
        parse_exposition("# TYPE a counter\na 1")
    with pytest.raises(ValueError):
        parse_exposition("a 1\n")
    with pytest.raises(ValueError):
        parse_exposition('# TYPE a counter\na{x="1} 1\n')
    with pytest.raises(ValueError):
        parse_exposition('# TYPE a counter\na{x="\\t"} 1\n')
    with pytest.raises(ValueError):
        parse_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n")
    assert parse_exposition('# TYPE a counter\na{x="q\\"\\n"} 1\n').value("a", x='q"\n') == 1


# ---- families ----


def test_every_method_records_its_family_with_ome_labels() -> None:
    metrics = Metrics("7.7.7")
    metrics.download_succeeded("BaseModel", "team-a", "llama", 42.0)
    metrics.download_failed("BaseModel", "team-a", "llama", "download")
    metrics.verification("BaseModel", "team-a", "llama", True, 2.0)
    metrics.verification("BaseModel", "team-a", "llama", False, 3.0)
    metrics.md5_failed("BaseModel", "team-a", "llama")
    metrics.rate_limited("BaseModel", "team-a", "llama", 60.0)
    metrics.bytes_downloaded("BaseModel", "team-a", "llama", 3 * 2**40)
    metrics.phase("parse", 0.5)
    metrics.set_in_progress(2)
    e = scrape(metrics)

    expected_types = {
        "model_agent_downloads_success_total": "counter",
        "model_agent_downloads_failed_total": "counter",
        "model_agent_verifications_total": "counter",
        "model_agent_md5_checksum_failed_total": "counter",
        "model_agent_rate_limit_total": "counter",
        "model_agent_download_duration_seconds": "histogram",
        "model_agent_verification_duration_seconds": "histogram",
        "model_agent_download_bytes_total": "counter",
        "model_agent_rate_limit_wait_seconds": "histogram",
        "model_agent_download_failures_by_reason_total": "counter",
        "model_agent_phase_duration_seconds": "histogram",
        "model_agent_downloads_in_progress": "gauge",
        "model_agent_build_info": "gauge",
    }
    for name, kind in expected_types.items():
        assert e.types.get(name) == kind, name
        assert e.has_family(name), name

    assert e.value("model_agent_downloads_success_total", **MODEL) == 1
    assert e.value("model_agent_download_duration_seconds_sum", **MODEL) == 42
    assert e.value("model_agent_downloads_failed_total", **MODEL) == 1
    assert e.value("model_agent_download_failures_by_reason_total", reason="download") == 1
    assert e.value("model_agent_verifications_total", result="success", **MODEL) == 1
    assert e.value("model_agent_verifications_total", result="failure", **MODEL) == 1
    assert e.value("model_agent_verification_duration_seconds_count") == 2
    assert e.value("model_agent_md5_checksum_failed_total", **MODEL) == 1
    assert e.value("model_agent_rate_limit_total", **MODEL) == 1
    assert e.value("model_agent_rate_limit_wait_seconds_sum", **MODEL) == 60
    assert e.value("model_agent_download_bytes_total", **MODEL) == 3 * 2**40
    assert e.value("model_agent_phase_duration_seconds_count", phase="parse") == 1
    assert e.value("model_agent_downloads_in_progress") == 2
    assert e.value("model_agent_build_info", version="7.7.7") == 1
    assert not [s for s in e.samples if s.name.startswith("go_")]


def test_default_version_is_the_package_version() -> None:
    e = scrape(Metrics())
    assert e.value("model_agent_build_info", version=modelagent.__version__) == 1


def test_cluster_models_have_an_empty_namespace_and_odd_kinds_are_unknown() -> None:
    metrics = Metrics("t")
    metrics.download_succeeded("ClusterBaseModel", None, "qwen", 1.0)
    metrics.download_succeeded("ClusterBaseModel", "ignored", "qwen", 1.0)
    metrics.bytes_downloaded("Pod", "ns", "x", 1)
    e = scrape(metrics)
    assert e.value("model_agent_downloads_success_total", **CLUSTER_MODEL) == 2
    assert e.value("model_agent_download_bytes_total", model_type="unknown", namespace="ns", name="x") == 1


def test_process_families_come_from_procfs_not_go() -> None:
    e = scrape(Metrics("t"))
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
    ):
        assert len(e.find(name)) == 1, name
    assert e.value("process_resident_memory_bytes") > 0
    assert e.value("process_threads") >= 1
    assert e.types["process_cpu_seconds_total"] == "counter"


def test_buckets_reach_hours() -> None:
    buckets = _core.metrics_buckets()
    assert buckets["model_agent_download_duration_seconds"][0] == 1
    assert buckets["model_agent_download_duration_seconds"][-1] == 6 * 3600
    assert buckets["model_agent_verification_duration_seconds"][0] == 0.1
    assert buckets["model_agent_verification_duration_seconds"][-1] == 3600
    assert buckets["model_agent_rate_limit_wait_seconds"][-1] == 3600
    assert buckets["model_agent_phase_duration_seconds"][-1] == 6 * 3600
    metrics = Metrics("t")
    metrics.download_succeeded("BaseModel", "team-a", "llama", 4 * 3600.0)
    e = scrape(metrics)
    assert e.value("model_agent_download_duration_seconds_bucket", le="3600", **MODEL) == 0
    assert e.value("model_agent_download_duration_seconds_bucket", le="14400", **MODEL) == 1
    les = [s.labels["le"] for s in e.find("model_agent_download_duration_seconds_bucket", **MODEL)]
    assert [float(x) for x in les[:-1]] == buckets["model_agent_download_duration_seconds"]


# ---- failures ----


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_core.RateLimitedError("429"), "rate_limited"),
        (_core.GatedRepoError("gated"), "gated"),
        (_core.UnauthorizedError("401"), "unauthorized"),
        (_core.RepositoryNotFoundError("404"), "not_found"),
        (_core.RevisionNotFoundError("404"), "not_found"),
        (_core.EntryNotFoundError("404"), "not_found"),
        (_core.HttpStatusError("500"), "http_error"),
        (_core.VerificationError("sha"), "verification"),
        (_core.DiskSpaceError("full"), "disk_space"),
        (_core.UnsafePathError("../x"), "unsafe_path"),
        (_core.CancelledError("stop"), "cancelled"),
        (_core.DownloadError("reset"), "download"),
        (_core.InvalidStorageUri("bad://"), "invalid_storage_uri"),
        (_core.ModelConfigError("config.json"), "model_config"),
        (_core.SafetensorsError("header"), "model_config"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk_space"),
        (OSError(errno.EACCES, "Permission denied"), "other"),
        (RuntimeError("?"), "other"),
    ],
)
def test_failure_reason_classifies_errors(error: BaseException, reason: str) -> None:
    assert failure_reason(error) == reason
    assert reason in FAILURE_REASONS


def test_kubernetes_api_errors_are_classified() -> None:
    from kubernetes.client.exceptions import ApiException

    assert failure_reason(ApiException(status=409, reason="Conflict")) == "kubernetes"


def test_download_failed_accepts_an_exception() -> None:
    metrics = Metrics("t")
    metrics.download_failed("BaseModel", "team-a", "llama", _core.VerificationError("digest mismatch"))
    limited = _core.RateLimitedError("429 from hub")
    limited.retry_after = 120.0
    metrics.download_failed("BaseModel", "team-a", "llama", limited)
    metrics.download_failed("ClusterBaseModel", None, "qwen", _core.RateLimitedError("no Retry-After"))
    e = scrape(metrics)
    assert e.value("model_agent_downloads_failed_total", **MODEL) == 2
    assert e.value("model_agent_download_failures_by_reason_total", reason="verification") == 1
    assert e.value("model_agent_download_failures_by_reason_total", reason="rate_limited") == 2
    # OME: a rate-limited failure also counts a rate-limit hit observing Retry-After, else 30 s.
    assert e.value("model_agent_rate_limit_total", **MODEL) == 1
    assert e.value("model_agent_rate_limit_wait_seconds_sum", **MODEL) == 120
    assert e.value("model_agent_rate_limit_wait_seconds_sum", **CLUSTER_MODEL) == 30


def test_unknown_reason_is_refused_and_records_nothing() -> None:
    metrics = Metrics("t")
    with pytest.raises(ValueError, match=r'unknown reason "timeout".*rate_limited'):
        metrics.download_failed("BaseModel", "team-a", "llama", "timeout")
    assert not scrape(metrics).has_family("model_agent_downloads_failed_total")


@pytest.mark.parametrize(
    ("call", "metric"),
    [
        (lambda m: m.download_succeeded("BaseModel", "a", "b", -1.0), "model_agent_download_duration_seconds"),
        (lambda m: m.download_succeeded("BaseModel", "a", "b", math.nan), "model_agent_download_duration_seconds"),
        (lambda m: m.verification("BaseModel", "a", "b", True, math.inf), "model_agent_verification_duration_seconds"),
        (lambda m: m.rate_limited("BaseModel", "a", "b", -5.0), "model_agent_rate_limit_wait_seconds"),
        (lambda m: m.bytes_downloaded("BaseModel", "a", "b", -1), "model_agent_download_bytes_total"),
        (lambda m: m.phase("transfer", -0.1), "model_agent_phase_duration_seconds"),
        (lambda m: m.phase("download", 1.0), "model_agent_phase_duration_seconds"),
        (lambda m: m.set_in_progress(-3), "model_agent_downloads_in_progress"),
    ],
)
def test_bad_amounts_raise_value_error_naming_the_metric(call, metric: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=metric):
        call(Metrics("t"))


def test_wrong_types_raise_type_error() -> None:
    metrics = Metrics("t")
    with pytest.raises(TypeError):
        metrics.download_succeeded("BaseModel", "a", "b", "ten")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        metrics.bytes_downloaded("BaseModel", "a", None, 1)  # type: ignore[arg-type]


# ---- phases ----


def test_time_phase_records_even_when_the_block_raises() -> None:
    metrics = Metrics("t")
    with metrics.time_phase("transfer"):
        pass
    with pytest.raises(KeyError), metrics.time_phase("transfer"):
        raise KeyError("boom")
    e = scrape(metrics)
    assert e.value("model_agent_phase_duration_seconds_count", phase="transfer") == 2
    assert e.value("model_agent_phase_duration_seconds_sum", phase="transfer") >= 0


def test_time_phase_refuses_an_unknown_phase_before_running_the_block() -> None:
    metrics = Metrics("t")
    ran = []
    with pytest.raises(ValueError, match="queue, transfer, verify, parse"), metrics.time_phase("fetch"):
        ran.append(True)
    assert ran == []
    assert PHASES == ("queue", "transfer", "verify", "parse")


# ---- forgetting ----


def test_forget_model_removes_its_series_only() -> None:
    metrics = Metrics("t")
    for kind, ns, name in (("BaseModel", "team-a", "llama"), ("ClusterBaseModel", None, "qwen")):
        metrics.download_succeeded(kind, ns, name, 1.0)
        metrics.download_failed(kind, ns, name, "other")
        metrics.verification(kind, ns, name, False, 1.0)
        metrics.md5_failed(kind, ns, name)
        metrics.rate_limited(kind, ns, name, 1.0)
        metrics.bytes_downloaded(kind, ns, name, 1)
    metrics.forget_model("BaseModel", "team-a", "llama")
    metrics.forget_model("BaseModel", "team-a", "never-existed")
    e = scrape(metrics)
    assert {s.labels["name"] for s in e.samples if "name" in s.labels} == {"qwen"}
    assert e.value("model_agent_download_failures_by_reason_total", reason="other") == 2
    metrics.forget_model("ClusterBaseModel", None, "qwen")
    assert not [s for s in scrape(metrics).samples if "name" in s.labels]


# ---- threads ----


def test_concurrent_recording_from_python_threads_is_exact() -> None:
    metrics = Metrics("t")
    per_thread = 2000

    def work() -> None:
        for _ in range(per_thread):
            metrics.bytes_downloaded("BaseModel", "team-a", "llama", 3)
            metrics.download_succeeded("BaseModel", "team-a", "llama", 0.5)

    def scrape_loop(stop: threading.Event) -> None:
        while not stop.is_set():
            parse_exposition(metrics.exposition())

    stop = threading.Event()
    scraper = threading.Thread(target=scrape_loop, args=(stop,))
    scraper.start()
    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    scraper.join()
    e = scrape(metrics)
    assert e.value("model_agent_downloads_success_total", **MODEL) == 4 * per_thread
    assert e.value("model_agent_download_bytes_total", **MODEL) == 3 * 4 * per_thread


# ---- contract details ----


def test_content_type_is_text_format_0_0_4() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_docs_list_every_family_reason_and_bucket(repo_root: Path) -> None:
    doc = (repo_root / "docs" / "metrics.md").read_text()
    e = scrape(Metrics("t"))
    for family in e.types:
        assert f"`{family}`" in doc, family
    for family in ("model_agent_downloads_success_total", "model_agent_rate_limit_wait_seconds"):
        assert f"`{family}`" in doc, family
    for reason in FAILURE_REASONS:
        assert f"`{reason}`" in doc, reason
    for family, bounds in _core.metrics_buckets().items():
        listed = ", ".join(f"{b:g}" for b in bounds)
        assert listed in doc, (family, listed)
