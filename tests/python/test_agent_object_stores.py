"""The agent with object-store models (``oci://``, ``s3://``): what the Gopher hands the download (parameters,
the Secret's data, the TensorRT-LLM shape filter), the Updating → Ready/Failed flow, metrics, unverifiable
objects and change detection.

Two layers: a stand-in downloader that records its arguments (every wiring decision, no network), and the
real :func:`modelagent.download` with a source registered for ``oci`` that plans files served by a local
HTTP server (engine, verification, path filter and metrics end to end).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelagent import CredentialsError, VerificationError
from modelagent.agent.destination import read_owner
from modelagent.agent.gopher import Gopher
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.metrics import Metrics
from modelagent.sources import SourcePlan, SourceRequest, register_source, unregister_source

from modelagent.testing.oci_object_storage import fake_oci  # noqa: F401 - pytest fixture
from modelagent.testing.s3_server import ACCESS_KEY, SECRET_KEY
from modelagent.testing.s3_server import moto_server  # noqa: F401 - pytest fixture
from metrics_text import metric
from test_gopher import BOUND, RecordingSink, model, root, sink  # noqa: F401 - root, sink: fixtures

OCI_URI = "oci://n/tenancy/b/models/o/llama-trt"
S3_URI = "s3://models@us-east-1/llama-trt"
LISTING = {
    "config.json": b'{"model_type": "llama"}',
    "tokenizer.json": b'{"tokens": []}',
    "H100/config.json": b'{"shape": "H100"}',
    "H100/rank0.engine": b"h100-engine" * 240_000,  # 2.6 MB: three 1 MiB parts when stored multipart
    "A100-80G/rank0.engine": b"a100-engine" * 100,
    "L40/rank0.engine": b"l40-engine" * 100,
}
H100_NODE = {"node.kubernetes.io/instance-type": "BM.GPU.H100.8"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def trt(obj: dict[str, Any], model_type: str | None = None) -> dict[str, Any]:
    obj["spec"]["modelFormat"] = {"name": "tensorrtllm"}
    if model_type is not None:
        obj["spec"]["additionalMetadata"] = {"type": model_type}
    return obj


def key_of(obj: dict[str, Any]) -> str:
    return ModelRef.from_object(obj).configmap_key


class StandInDownload:
    """Records every call; applies the path filter to :data:`LISTING` and writes the kept files."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.unverified: list[tuple[str, str]] = []
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def __call__(self, uri: str, dest: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.calls.append({"uri": uri, "dest": Path(dest), **kwargs})
        if self.error is not None:
            raise self.error
        paths = list(LISTING)
        path_filter = kwargs.get("path_filter")
        dropped = path_filter(paths) if path_filter is not None else {}
        kept = [p for p in paths if p not in dropped]
        for rel in kept:
            target = Path(dest) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(LISTING[rel])
        return SimpleNamespace(files=kept, bytes_fetched=sum(len(LISTING[p]) for p in kept), commit="snap-1",
                               snapshot="snap-1", unverified=list(self.unverified), source=uri.split(":", 1)[0])


@pytest.fixture
def make_gopher(sink: RecordingSink, root: Path) -> Iterator[Any]:
    made: list[Gopher] = []

    def make(**kwargs: Any) -> Gopher:
        kwargs.setdefault("models_root", root)
        kwargs.setdefault("progress_interval", 0.05)
        kwargs.setdefault("parse_config", lambda ref, obj, folder: None)
        gopher = Gopher(sink, **kwargs).start()
        made.append(gopher)
        return gopher

    yield make
    for gopher in made:
        gopher.stop(timeout=10)


def run(gopher: Gopher, task_type: TaskType, obj: dict[str, Any]) -> None:
    gopher.submit(GopherTask.for_object(task_type, obj))
    assert gopher.wait_idle(BOUND)


# ------------------------------------------------------------------------------------ wiring (stand-in)


def test_oci_model_gets_parameters_and_secret_data_not_an_hf_token(make_gopher, sink, root):
    fake = StandInDownload()
    secrets = {("team", "oci-creds"): {"key_file": b64("-----BEGIN KEY-----\n"), "fingerprint": b64("aa:bb\n")},
               ("agents", "cluster-creds"): {"aws_access_key_id": b64("AKIA")}}
    gopher = make_gopher(download=fake, read_secret=lambda ns, name: secrets.get((ns, name)),
                         cluster_namespace="agents", connections=3)
    obj = model("m", OCI_URI, key="oci-creds", parameters={"auth": "UserPrincipal", "region": "us-ashburn-1"})
    run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Ready"
    (call,) = fake.calls
    assert call["parameters"] == {"auth": "UserPrincipal", "region": "us-ashburn-1"}
    assert call["credentials"] == {"key_file": "-----BEGIN KEY-----", "fingerprint": "aa:bb"}
    assert call["connections"] == 3
    assert "token" not in call and "endpoint" not in call and "path_filter" not in call
    assert [c[1][0] for c in sink.calls_for(key_of(obj)) if c[0] == "status"] == ["Updating", "Ready"]
    owner = read_owner(call["dest"])
    assert owner is not None and owner.storage_uri == OCI_URI and owner.commit == "snap-1"
    assert (call["dest"] / "A100-80G" / "rank0.engine").is_file(), "no shape filter for a non-tensorrtllm model"

    cluster = model("c", S3_URI, namespace=None, key="cluster-creds")
    run(gopher, TaskType.DOWNLOAD, cluster)
    assert fake.calls[-1]["credentials"] == {"aws_access_key_id": "AKIA"}
    assert fake.calls[-1]["parameters"] == {}
    assert sink.status(key_of(cluster)) == "Ready"


def test_a_named_secret_that_is_missing_or_garbled_fails_the_model(make_gopher, sink):
    fake = StandInDownload()
    secrets = {("team", "garbled"): {"aws_secret_access_key": "%%%not-base64"}}
    gopher = make_gopher(download=fake, read_secret=lambda ns, name: secrets.get((ns, name)), download_retry=1)
    missing = model("a", S3_URI, key="absent")
    garbled = model("b", S3_URI, key="garbled")
    run(gopher, TaskType.DOWNLOAD, missing)
    run(gopher, TaskType.DOWNLOAD, garbled)
    assert sink.status(key_of(missing)) == "Failed"
    assert sink.entries[key_of(missing)]["reason"] == "secret team/absent named by spec.storage.key does not exist"
    assert sink.entries[key_of(garbled)]["reason"] == ("secret team/garbled key 'aws_secret_access_key' is not "
                                                      "valid base64 UTF-8")
    assert fake.calls == [], "nothing is fetched anonymously when the named credentials are unusable"


def test_standalone_without_secrets_goes_on_with_the_sources_own_credentials(make_gopher, sink):
    fake = StandInDownload()
    gopher = make_gopher(download=fake, read_secret=None)
    obj = model("m", S3_URI, key="s3-creds")
    run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Ready"
    assert fake.calls[0]["credentials"] == {}


@pytest.mark.parametrize("uri", [OCI_URI, S3_URI])
def test_tensorrtllm_serving_model_keeps_its_shape_and_agnostic_files(make_gopher, sink, uri):
    fake = StandInDownload()
    gopher = make_gopher(download=fake, node_labels=lambda: H100_NODE)
    obj = trt(model("m", uri))
    run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Ready"
    dest = fake.calls[0]["dest"]
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and ".modelagent" not in p.parts)
    assert files == ["H100/config.json", "H100/rank0.engine", "config.json", "tokenizer.json"]
    assert fake.calls[0]["prune"] is True


def test_shape_filter_is_skipped_for_hf_and_non_serving_models(make_gopher, sink):
    fake = StandInDownload()
    gopher = make_gopher(download=fake, node_labels=lambda: H100_NODE)
    run(gopher, TaskType.DOWNLOAD, trt(model("hf", "hf://org/llama-trt")))
    run(gopher, TaskType.DOWNLOAD, trt(model("train", OCI_URI), model_type="Training"))
    assert [("path_filter" in c) for c in fake.calls] == [False, False]
    assert "token" in fake.calls[0] and "parameters" not in fake.calls[0]


def test_no_files_for_the_nodes_shape_fails_at_once_with_the_shapes_present(make_gopher, sink):
    fake = StandInDownload()
    metrics = Metrics()
    gopher = make_gopher(download=fake, metrics=metrics, download_retry=3,
                         node_labels=lambda: {"beta.kubernetes.io/instance-type": "gd-8xh200ib-i128"})
    obj = trt(model("m", OCI_URI))
    run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Failed"
    assert sink.entries[key_of(obj)]["reason"] == (
        f"no files for shape H200 (instance type gd-8xh200ib-i128) under {OCI_URI}; "
        "shapes present: A100-80G, H100, L40")
    assert len(fake.calls) == 1, "a missing shape is not retried"
    assert metric(metrics.exposition(), "model_agent_download_failures_by_reason_total", reason="download") == 1


def test_instance_type_map_extension_picks_the_alias(make_gopher, sink):
    from modelagent.agent.shape_filter import load_instance_type_map

    fake = StandInDownload()
    gopher = make_gopher(download=fake, node_labels=lambda: {"node.kubernetes.io/instance-type": "BM.GPU.L40S.4"},
                         instance_types=load_instance_type_map('{"BM.GPU.L40S.4": "L40"}'))
    obj = trt(model("m", OCI_URI))
    run(gopher, TaskType.DOWNLOAD, obj)
    dest = fake.calls[0]["dest"]
    assert (dest / "L40" / "rank0.engine").is_file() and not (dest / "H100").exists()


def test_the_shape_follows_the_node_labels(make_gopher, sink):
    fake = StandInDownload()
    labels = dict(H100_NODE)
    gopher = make_gopher(download=fake, node_labels=lambda: labels)
    obj = trt(model("m", OCI_URI))
    run(gopher, TaskType.DOWNLOAD, obj)
    run(gopher, TaskType.DOWNLOAD_OVERRIDE, obj)
    assert len(fake.calls) == 1, "same shape, same storage: nothing to do"
    labels["node.kubernetes.io/instance-type"] = "BM.GPU.A100-v2.8"
    run(gopher, TaskType.DOWNLOAD_OVERRIDE, obj)
    assert len(fake.calls) == 2
    assert sink.status(key_of(obj)) == "Ready"
    assert fake.calls[1]["path_filter"](list(LISTING)) == {
        "H100/config.json": "under shape directory H100/, this node is A100-80G",
        "H100/rank0.engine": "under shape directory H100/, this node is A100-80G",
        "L40/rank0.engine": "under shape directory L40/, this node is A100-80G",
    }


def test_changed_parameters_download_again(make_gopher, sink):
    fake = StandInDownload()
    gopher = make_gopher(download=fake)
    obj = model("m", OCI_URI, parameters={"auth": "InstancePrincipal"})
    run(gopher, TaskType.DOWNLOAD, obj)
    run(gopher, TaskType.DOWNLOAD_OVERRIDE, model("m", OCI_URI, parameters={"auth": "InstancePrincipal"}))
    run(gopher, TaskType.DOWNLOAD_OVERRIDE, model("m", OCI_URI, parameters={"auth": "UserPrincipal"}))
    assert [c["parameters"]["auth"] for c in fake.calls] == ["InstancePrincipal", "UserPrincipal"]


def test_unverifiable_objects_are_warned_about_and_noted_in_the_status(make_gopher, sink, caplog):
    fake = StandInDownload()
    fake.unverified = [("H100/rank0.engine", "multipart object without opc-meta-md5"),
                       ("config.json", "SSE-KMS ETag is not an MD5")]
    gopher = make_gopher(download=fake)
    obj = model("m", OCI_URI)
    with caplog.at_level(logging.WARNING, logger="modelagent.agent.gopher"):
        run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Ready"
    ready = [c[1] for c in sink.calls_for(key_of(obj)) if c[0] == "status" and c[1][0] == "Ready"]
    assert ready == [("Ready", "2 file(s) checked by size only, no digest: H100/rank0.engine (multipart object "
                               "without opc-meta-md5), config.json (SSE-KMS ETag is not an MD5)")]
    warned = [r.getMessage() for r in caplog.records if "checked by size only" in r.getMessage()]
    assert warned == ["H100/rank0.engine was checked by size only: multipart object without opc-meta-md5",
                      "config.json was checked by size only: SSE-KMS ETag is not an MD5"]


def test_md5_mismatch_and_verification_metrics(make_gopher, sink):
    fake = StandInDownload()
    metrics = Metrics()
    gopher = make_gopher(download=fake, metrics=metrics, download_retry=1)
    good, bad = model("good", OCI_URI), model("bad", S3_URI)
    run(gopher, TaskType.DOWNLOAD, good)
    fake.error = VerificationError("w.bin: content does not match its md5-multipart digest: expected a-2, got b-2")
    run(gopher, TaskType.DOWNLOAD, bad)
    text = metrics.exposition()
    who_good = {"model_type": "BaseModel", "namespace": "team", "name": "good"}
    who_bad = {"model_type": "BaseModel", "namespace": "team", "name": "bad"}
    assert metric(text, "model_agent_verifications_total", result="success", **who_good) == 1
    assert metric(text, "model_agent_verifications_total", result="failure", **who_bad) == 1
    assert metric(text, "model_agent_md5_checksum_failed_total", **who_bad) == 1
    assert metric(text, "model_agent_md5_checksum_failed_total", **who_good) == 0
    assert sink.status(key_of(bad)) == "Failed"


def test_credentials_error_from_the_source_is_retried_then_fails(make_gopher, sink):
    fake = StandInDownload()
    fake.error = CredentialsError("no OCI config file at /root/.oci/config (OCI_CONFIG_PATH unset)")
    metrics = Metrics()
    gopher = make_gopher(download=fake, download_retry=2, metrics=metrics)
    obj = model("m", OCI_URI, parameters={"auth": "UserPrincipal"})
    run(gopher, TaskType.DOWNLOAD, obj)
    assert len(fake.calls) == 2
    assert sink.entries[key_of(obj)]["reason"] == fake.error.args[0]
    assert metric(metrics.exposition(), "model_agent_download_failures_by_reason_total", reason="credentials") == 1


# ------------------------------------------------------------- end to end: real download, registered source


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """Files of :data:`LISTING` served over HTTP on 127.0.0.1, and an ``oci`` source planning them."""
    folder = tmp_path / "bucket"
    for rel, data in LISTING.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state = SimpleNamespace(requests=[], digests={}, no_digest=set(), folder=folder)
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def plan(request: SourceRequest) -> SourcePlan:
        state.requests.append(request)
        files, unverifiable = [], []
        for rel, data in LISTING.items():
            entry: dict[str, Any] = {"path": rel, "url": f"{base}/{rel}", "size": len(data)}
            if rel in state.no_digest:
                unverifiable.append((rel, "no MD5 in the listing"))
            else:
                md5 = state.digests.get(rel) or base64.b64encode(hashlib.md5(data).digest()).decode()
                entry["digest"] = {"kind": "md5", "value": md5}
            files.append(entry)
        return SourcePlan(files=files, snapshot="snap-" + hashlib.sha256(json.dumps(sorted(LISTING)).encode())
                          .hexdigest()[:12], label="models/llama-trt", unverifiable=unverifiable)

    register_source("oci", plan, replace=True)
    try:
        yield state
    finally:
        unregister_source("oci")
        server.shutdown()
        server.server_close()


def test_e2e_tensorrtllm_oci_model_downloads_its_shape_with_metrics(make_gopher, sink, bucket):
    metrics = Metrics()
    gopher = make_gopher(metrics=metrics, node_labels=lambda: H100_NODE, download_retry=1)
    obj = trt(model("m", OCI_URI, parameters={"auth": "UserPrincipal"}))
    run(gopher, TaskType.DOWNLOAD, obj)
    key = key_of(obj)
    assert sink.status(key) == "Ready", sink.entries.get(key)
    dest = next(p for p in (gopher.models_root).rglob("tokenizer.json")).parent
    on_disk = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and ".modelagent" not in p.parts)
    assert on_disk == ["H100/config.json", "H100/rank0.engine", "config.json", "tokenizer.json"]
    assert (dest / "H100" / "rank0.engine").read_bytes() == LISTING["H100/rank0.engine"]
    assert bucket.requests[0].parameters == {"auth": "UserPrincipal"}
    text = metrics.exposition()
    who = {"model_type": "BaseModel", "namespace": "team", "name": "m"}
    kept = ["H100/config.json", "H100/rank0.engine", "config.json", "tokenizer.json"]
    assert metric(text, "model_agent_download_bytes_total", **who) == sum(len(LISTING[p]) for p in kept)
    assert metric(text, "model_agent_verifications_total", result="success", **who) == 1
    owner = read_owner(dest)
    assert owner is not None and owner.commit is not None and owner.commit.startswith("snap-")
    phases = {c[1]["phase"] for c in sink.calls_for(key) if c[0] == "progress" and c[1]}
    assert {"Scanning", "Finalizing"} <= phases


def test_e2e_md5_mismatch_fails_and_counts(make_gopher, sink, bucket):
    bucket.digests["tokenizer.json"] = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    metrics = Metrics()
    gopher = make_gopher(metrics=metrics, download_retry=1)
    obj = model("m", OCI_URI)
    run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Failed"
    assert "tokenizer.json" in sink.entries[key_of(obj)]["reason"]
    who = {"model_type": "BaseModel", "namespace": "team", "name": "m"}
    text = metrics.exposition()
    assert metric(text, "model_agent_md5_checksum_failed_total", **who) == 1
    assert metric(text, "model_agent_verifications_total", result="failure", **who) == 1


def test_e2e_unverifiable_object_is_noted(make_gopher, sink, bucket):
    bucket.no_digest.add("config.json")
    gopher = make_gopher()
    obj = model("m", OCI_URI)
    run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Ready"
    ready = [c[1] for c in sink.calls_for(key_of(obj)) if c[0] == "status" and c[1][0] == "Ready"]
    assert ready == [("Ready", "1 file(s) checked by size only, no digest: config.json (no MD5 in the listing)")]


def test_e2e_shape_change_prunes_the_old_shape(make_gopher, sink, bucket):
    labels = dict(H100_NODE)
    gopher = make_gopher(node_labels=lambda: labels, download_retry=1)
    obj = trt(model("m", OCI_URI))
    run(gopher, TaskType.DOWNLOAD, obj)
    dest = next(p for p in gopher.models_root.rglob("tokenizer.json")).parent
    assert (dest / "H100" / "rank0.engine").is_file()
    labels["node.kubernetes.io/instance-type"] = "gd-8xl40-i128"
    run(gopher, TaskType.DOWNLOAD_OVERRIDE, obj)
    assert sink.status(key_of(obj)) == "Ready"
    assert (dest / "L40" / "rank0.engine").is_file()
    assert not (dest / "H100").exists(), "the other shape's engines are removed"
    assert (dest / "tokenizer.json").is_file()


# ------------------------------------------- end to end: the whole agent in Kubernetes mode (fake API server)


NODE = "gpu-node-1"


class AgentOnKube:
    """The real agent (``AgentRunner``, Kubernetes mode) in this process, against the fake API server, so a
    source registered here is the agent's source too."""

    def __init__(self, fake_kube: Any, kube_config_file: Path, root: Path, environ: dict[str, str]) -> None:
        from modelagent.agent.config import resolve
        from modelagent.agent.runner import AgentRunner

        self.kube = fake_kube
        settings = resolve({"node_name": NODE, "kubeconfig": str(kube_config_file), "models_root_dir": str(root),
                            "port": "0", "progress_interval": "0.2", "download_retry": "1"}, environ)
        self.runner = AgentRunner(settings)
        self.thread = threading.Thread(target=self.runner.run, name="agent", daemon=True)

    def __enter__(self) -> AgentOnKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the agent did not stop"

    def label(self, name: str) -> str | None:
        label_key = ModelRef(kind="BaseModel", namespace="team", name=name).label_key
        return (self.kube.get("nodes", NODE)["metadata"].get("labels") or {}).get(label_key)

    def entry(self, name: str) -> dict | None:
        if not self.kube.exists("configmaps", NODE, namespace="ome"):
            return None
        text = (self.kube.get("configmaps", NODE, namespace="ome").get("data") or {}).get(f"team.basemodel.{name}")
        return None if text is None else json.loads(text)

    def wait(self, predicate: Any, what: str, name: str) -> None:
        deadline = time.monotonic() + BOUND
        while not predicate():
            assert self.thread.is_alive(), "the agent stopped"
            assert time.monotonic() < deadline, (f"timed out waiting for {what}: label {self.label(name)}, "
                                                 f"entry {self.entry(name)}")
            time.sleep(0.05)

    def wait_ready(self, name: str) -> None:
        self.wait(lambda: self.label(name) == "Ready" and (self.entry(name) or {}).get("status") == "Ready",
                  "Ready", name)


def files_under(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and ".modelagent" not in p.parts)


def add_model(fake_kube: Any, obj: dict[str, Any]) -> None:
    obj = json.loads(json.dumps(obj))
    del obj["metadata"]["uid"]
    fake_kube.create("basemodels", obj, namespace="team")


def test_e2e_agent_on_kubernetes_with_shapes_secrets_and_relabelling(fake_kube, kube_config_file, bucket, tmp_path):
    fake_kube.add_node(NODE, labels={"node.kubernetes.io/instance-type": "BM.GPU.GB200.4"})
    fake_kube.add_namespace("team")
    fake_kube.create("secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oci-creds"},
                                 "stringData": {"fingerprint": "aa:bb"}}, namespace="team")
    root = tmp_path / "models"
    with AgentOnKube(fake_kube, kube_config_file, root, {"INSTANCE_TYPE_MAP": '{"BM.GPU.GB200.4": "H100"}'}) as agent:
        add_model(fake_kube, trt(model("trt", OCI_URI, key="oci-creds", parameters={"auth": "UserPrincipal"})))
        agent.wait_ready("trt")
        dest = root / "basemodels" / "team" / "trt"
        on_disk = files_under(dest)
        assert on_disk == ["H100/config.json", "H100/rank0.engine", "config.json", "tokenizer.json"]
        assert bucket.requests[-1].credentials == {"fingerprint": "aa:bb"}
        assert bucket.requests[-1].parameters == {"auth": "UserPrincipal"}
        who = {"model_type": "BaseModel", "namespace": "team", "name": "trt"}
        text = agent.runner.metrics.exposition()
        assert metric(text, "model_agent_verifications_total", result="success", **who) == 1
        assert metric(text, "model_agent_download_bytes_total", **who) == sum(len(LISTING[p]) for p in on_disk)

        # The node is relabelled with another shape: the agent follows it.
        fake_kube.patch("nodes", NODE, {"metadata": {"labels": {"node.kubernetes.io/instance-type": "gd-8xl40-i128"}}})
        agent.wait(lambda: (dest / "L40" / "rank0.engine").is_file() and not (dest / "H100").exists()
                   and agent.label("trt") == "Ready", "the L40 shape", "trt")
        assert (dest / "tokenizer.json").is_file()


# ------------------------------------------------------------------------- end to end: s3:// against moto


def test_e2e_s3_models_on_kubernetes(fake_kube, kube_config_file, moto_server, tmp_path):  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    for rel, data in LISTING.items():
        s3.put_object(Bucket="models", Key=f"llama-trt/{rel}", Body=data)
    fake_kube.add_node(NODE, labels={"node.kubernetes.io/instance-type": "p5.48xlarge"})
    fake_kube.add_namespace("team")
    fake_kube.create("secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds"},
                                 "stringData": {"aws_access_key_id": ACCESS_KEY,
                                                "aws_secret_access_key": SECRET_KEY}}, namespace="team")
    root = tmp_path / "models"
    parameters = {"endpoint": moto_server.endpoint, "region": "us-east-1"}
    with AgentOnKube(fake_kube, kube_config_file, root, {}) as agent:
        add_model(fake_kube, model("plain", "s3://models/llama-trt", key="s3-creds", parameters=parameters))
        add_model(fake_kube, trt(model("trt", "s3://models/llama-trt", key="s3-creds", parameters=parameters)))
        add_model(fake_kube, model("nokey", "s3://models/absent", key="no-such-secret", parameters=parameters))
        agent.wait_ready("plain")
        agent.wait_ready("trt")
        # The label is written before the ConfigMap entry: wait for both.
        agent.wait(lambda: agent.label("nokey") == "Failed" and (agent.entry("nokey") or {}).get("status") == "Failed",
                   "nokey Failed", "nokey")
        assert files_under(root / "basemodels" / "team" / "plain") == sorted(LISTING)
        assert files_under(root / "basemodels" / "team" / "trt") == [
            "H100/config.json", "H100/rank0.engine", "config.json", "tokenizer.json"]
        for rel in LISTING:
            if (root / "basemodels" / "team" / "plain" / rel).is_file():
                assert (root / "basemodels" / "team" / "plain" / rel).read_bytes() == LISTING[rel]
        assert agent.entry("nokey")["reason"] == "secret team/no-such-secret named by spec.storage.key does not exist"
        text = agent.runner.metrics.exposition()
        for name in ("plain", "trt"):
            who = {"model_type": "BaseModel", "namespace": "team", "name": name}
            assert metric(text, "model_agent_verifications_total", result="success", **who) == 1
            assert metric(text, "model_agent_md5_checksum_failed_total", **who) == 0
        assert metric(text, "model_agent_download_bytes_total", model_type="BaseModel", namespace="team",
                      name="plain") == sum(len(v) for v in LISTING.values())
        assert metric(text, "model_agent_download_failures_by_reason_total", reason="credentials") == 1


def test_e2e_s3_md5_mismatch_is_counted(make_gopher, sink, moto_server):  # noqa: F811
    from modelagent.download import download

    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/config.json", Body=b"{}")
    s3.put_object(Bucket="models", Key="m/weights.bin", Body=b"w" * 4096)

    def download_after_corruption(uri: str, dest: Any, **kwargs: Any) -> Any:
        def corrupt(paths: list[str]) -> dict[str, str]:
            # Between listing and transfer the object changes to other bytes of the same size, as a store
            # that corrupted it would serve them: the listed ETag no longer matches.
            s3.put_object(Bucket="models", Key="m/weights.bin", Body=b"x" * 4096)
            return {}

        return download(uri, dest, path_filter=corrupt, **kwargs)

    metrics = Metrics()
    secret = {"aws_access_key_id": b64(ACCESS_KEY), "aws_secret_access_key": b64(SECRET_KEY)}
    gopher = make_gopher(metrics=metrics, download_retry=1, download=download_after_corruption,
                         read_secret=lambda ns, name: secret)
    obj = model("m", "s3://models/m", key="s3", parameters={"endpoint": moto_server.endpoint, "region": "us-east-1"})
    run(gopher, TaskType.DOWNLOAD, obj)
    assert sink.status(key_of(obj)) == "Failed"
    assert "weights.bin" in sink.entries[key_of(obj)]["reason"]
    text = metrics.exposition()
    who = {"model_type": "BaseModel", "namespace": "team", "name": "m"}
    assert metric(text, "model_agent_md5_checksum_failed_total", **who) == 1
    assert metric(text, "model_agent_verifications_total", result="failure", **who) == 1


# ---------------------------------------------------------- end to end: oci:// against the fake OCI service


def put_oci_listing(store: Any) -> None:
    """:data:`LISTING` under ``models/llama-trt/``: the H100 engine multipart-style (composite MD5),
    tokenizer.json without any MD5 (unverifiable), the rest single-part."""
    for rel, data in LISTING.items():
        name = f"llama-trt/{rel}"
        if rel == "H100/rank0.engine":
            store.put_object("models", name, data, part_size=1 << 20)
        elif rel == "tokenizer.json":
            store.put_object("models", name, data, md5=False)
        else:
            store.put_object("models", name, data)


def test_e2e_oci_tensorrtllm_model_on_an_h100_node(fake_kube, kube_config_file, fake_oci, tmp_path, caplog):
    creds = fake_oci.add_user(tmp_path / "oci")
    put_oci_listing(fake_oci)
    fake_kube.add_node(NODE, labels={"node.kubernetes.io/instance-type": "BM.GPU.H100.8"})
    fake_kube.add_namespace("team")
    root = tmp_path / "models"
    uri = f"oci://n/{fake_oci.namespace}/b/models/o/llama-trt"
    parameters = {"auth": "UserPrincipal", "config_file": str(creds.config_file), "endpoint": fake_oci.url}
    with caplog.at_level(logging.WARNING, logger="modelagent.agent.gopher"), \
            AgentOnKube(fake_kube, kube_config_file, root, {}) as agent:
        add_model(fake_kube, trt(model("trt", uri, parameters=parameters)))
        agent.wait_ready("trt")
        dest = root / "basemodels" / "team" / "trt"
        assert files_under(dest) == ["H100/config.json", "H100/rank0.engine", "config.json", "tokenizer.json"]
        for rel in files_under(dest):
            assert (dest / rel).read_bytes() == LISTING[rel]
        assert not fake_oci.find_requests(path="A100-80G/") and not fake_oci.find_requests(path="L40/")
        who = {"model_type": "BaseModel", "namespace": "team", "name": "trt"}
        text = agent.runner.metrics.exposition()
        assert metric(text, "model_agent_verifications_total", result="success", **who) == 1
        kept = ["H100/config.json", "H100/rank0.engine", "config.json", "tokenizer.json"]
        assert metric(text, "model_agent_download_bytes_total", **who) == sum(len(LISTING[p]) for p in kept)
    warned = [r.getMessage() for r in caplog.records if "checked by size only" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("tokenizer.json was checked by size only")


def test_e2e_oci_md5_mismatch_and_missing_shape(make_gopher, sink, fake_oci, tmp_path):
    creds = fake_oci.add_user(tmp_path / "oci")
    put_oci_listing(fake_oci)
    parameters = {"auth": "UserPrincipal", "config_file": str(creds.config_file), "endpoint": fake_oci.url}
    uri = f"oci://n/{fake_oci.namespace}/b/models/o/llama-trt"
    metrics = Metrics()
    gopher = make_gopher(metrics=metrics, download_retry=1,
                         node_labels=lambda: {"node.kubernetes.io/instance-type": "gd-8xh200ib-i128"})
    fake_oci.corrupt_bytes(0, count=100, path=r"/o/llama-trt/config\.json$")
    plain = model("plain", uri, parameters=parameters)
    shaped = trt(model("h200", uri, parameters=parameters))
    run(gopher, TaskType.DOWNLOAD, plain)
    run(gopher, TaskType.DOWNLOAD, shaped)
    assert sink.status(key_of(plain)) == "Failed" and "config.json" in sink.entries[key_of(plain)]["reason"]
    text = metrics.exposition()
    who = {"model_type": "BaseModel", "namespace": "team", "name": "plain"}
    assert metric(text, "model_agent_md5_checksum_failed_total", **who) == 1
    assert metric(text, "model_agent_verifications_total", result="failure", **who) == 1
    assert sink.entries[key_of(shaped)]["reason"] == (
        f"no files for shape H200 (instance type gd-8xh200ib-i128) under {uri}; shapes present: A100-80G, H100, L40")


def test_e2e_standalone_once_takes_the_shape_from_the_files_node(moto_server, tmp_path, monkeypatch):  # noqa: F811
    import io

    from modelagent.agent.config import resolve
    from modelagent.agent.runner import AgentRunner

    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    for rel, data in LISTING.items():
        s3.put_object(Bucket="models", Key=f"llama-trt/{rel}", Body=data)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    models = tmp_path / "models.yaml"
    models.write_text(f"""
kind: Node
metadata:
  labels:
    node.kubernetes.io/instance-type: BM.GPU.A100-v2.8
---
kind: BaseModel
metadata: {{name: trt, namespace: team}}
spec:
  modelFormat: {{name: tensorrtllm}}
  storage:
    storageUri: s3://models/llama-trt
    parameters: {{endpoint: "{moto_server.endpoint}", region: us-east-1}}
""")
    root = tmp_path / "root"
    settings = resolve({"standalone": str(models), "once": True, "models_root_dir": str(root), "port": "0"}, {})
    out = io.StringIO()
    assert AgentRunner(settings, stdout=out).run() == 0, out.getvalue()
    assert files_under(root / "basemodels" / "team" / "trt") == [
        "A100-80G/rank0.engine", "config.json", "tokenizer.json"]
    assert "team.basemodel.trt  Ready" in out.getvalue()
