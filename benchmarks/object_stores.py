#!/usr/bin/env python3
"""Benchmark: downloading a synthetic model from OCI Object Storage and S3 APIs on loopback, modelagent
vs the stores' own tools, on the same bytes.

- The synthetic model of ``download.py`` (config, tokenizer and --shards safetensors shards, --size-gb in
  total) is written once into --workdir, with the MD5s an object store would report for it: plain MD5 for
  files below the upload tools' multipart threshold, a multipart MD5 (``<md5 of part md5s>-<parts>``) for
  the others, as ``oci os object put`` (128 MiB parts) and ``aws s3 cp`` (8 MiB parts) would have stored
  them.
- OCI Object Storage on 127.0.0.1: nginx answers GetNamespace and serves GetObject/HeadObject from the
  model files with ``sendfile`` (``Content-MD5`` or ``opc-multipart-md5`` per object); ListObjects
  (``fields``, ``prefix``, ``start``, ``limit``, ``nextStartWith``) is proxied to the Python API server.
- S3 on 127.0.0.1 (path style): the Python API server answers ListObjectsV2 (XML, continuation tokens,
  ``encoding-type=url``), HeadObject and GetObject (Range, ``If-Match`` against the MD5 ETag), bodies
  with ``sendfile``. nginx cannot serve S3 here: boto3's transfer manager sends ``If-Match: "<etag>"`` on
  every ranged GET and nginx compares it with its own ETag only (a 412 for every part).
- Signatures are not verified by these servers (they only require an ``Authorization`` header of the
  right scheme, so every client runs its signing code); the project's test fakes verify them.
- Peers, every one with 16 concurrent requests: the ``oci`` CLI's ``os object bulk-download``
  (user-principal config file, ``--endpoint``), boto3's transfer manager (``download_file`` per object
  with ``TransferConfig(max_concurrency=16)``), ``aws s3 cp --recursive`` (when ``awscli`` imports), and
  modelagent's ``oci://`` and ``s3://`` sources through ``modelagent.download()``.
- ``dd bs=1M conv=fsync`` of the same byte count to the same disk is the machine's own write limit.

Each tool runs --repeats times (tools interleaved, into a fresh directory each time); the tables show the
median wall time with its CPU seconds and every run's time. After each run every file's SHA-256 is
checked (not timed). Prints Markdown on stdout, progress on stderr.
"""

from __future__ import annotations

import os
import sys

# benchmarks/inspect.py would shadow the stdlib module `inspect`: keep this folder off the import path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import argparse
import base64
import hashlib
import importlib.util
import json
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape


def _sibling(name: str) -> types.ModuleType:
    """Imports benchmarks/<name>.py by path (the folder is off sys.path, see above)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(_here, f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_dl = _sibling("download")  # the synthetic model, the SHA-256 check, dd and the result record are shared
MB, MiB = _dl.MB, _dl.MiB

NAMESPACE = "benchns"
BUCKET = "bench-models"
PREFIX = "llama-synthetic/"
OCI_PART = 128 * MiB  # oci CLI upload part size and multipart threshold (defaults)
S3_PART = 8 * MiB  # aws CLI / boto3 multipart_chunksize and multipart_threshold (defaults)
CONCURRENCY = 16  # every tool: modelagent's default connection count
ACCESS_KEY, SECRET_KEY, REGION = "AKIABENCHOBJECTSTORE", "bench-secret-key", "us-east-1"


# --------------------------------------------------------------------------------------------------
# The stored objects


@dataclass(frozen=True)
class StoredObject:
    """One model file as both stores would describe it."""

    path: str  # relative to the model folder; the object name is PREFIX + path
    size: int
    md5_b64: str  # MD5 of the whole content
    s3_etag: str  # "<hex>" or "<hex>-<parts>" with 8 MiB parts (quotes included)
    oci_multipart_md5: str  # "" for a single-part object, else "<b64>-<parts>" with 128 MiB parts
    mtime: float

    @property
    def name(self) -> str:
        return PREFIX + self.path

    @property
    def oci_listing_md5(self) -> str:
        return self.oci_multipart_md5 or self.md5_b64


def _composite(part_digests: list[bytes]) -> bytes:
    return hashlib.md5(b"".join(part_digests)).digest()


def describe_objects(model: Path, paths: list[str]) -> list[StoredObject]:
    """MD5s of every file, whole and per part for both part sizes, in one read (cached beside the model)."""
    cache = model.parent / "object-digests.json"
    known: dict[str, dict[str, object]] = json.loads(cache.read_text()) if cache.exists() else {}
    out: list[StoredObject] = []
    for path in sorted(paths):
        st = (model / path).stat()
        entry = known.get(path)
        if not entry or entry.get("size") != st.st_size or entry.get("mtime") != st.st_mtime:
            whole, s3_parts, oci_parts = hashlib.md5(), [], []
            oci_part = hashlib.md5()
            with open(model / path, "rb") as f:
                while chunk := f.read(S3_PART):  # S3_PART divides OCI_PART
                    whole.update(chunk)
                    s3_parts.append(hashlib.md5(chunk).digest())
                    oci_part.update(chunk)
                    if len(s3_parts) % (OCI_PART // S3_PART) == 0:
                        oci_parts.append(oci_part.digest())
                        oci_part = hashlib.md5()
            if len(s3_parts) % (OCI_PART // S3_PART):
                oci_parts.append(oci_part.digest())
            s3_etag = (f'"{whole.hexdigest()}"' if st.st_size <= S3_PART
                       else f'"{_composite(s3_parts).hex()}-{len(s3_parts)}"')
            oci_mp = ("" if st.st_size <= OCI_PART
                      else f"{base64.b64encode(_composite(oci_parts)).decode()}-{len(oci_parts)}")
            entry = {"size": st.st_size, "mtime": st.st_mtime, "md5_b64": base64.b64encode(whole.digest()).decode(),
                     "s3_etag": s3_etag, "oci_multipart_md5": oci_mp}
            known[path] = entry
        out.append(StoredObject(path, st.st_size, str(entry["md5_b64"]), str(entry["s3_etag"]),
                                str(entry["oci_multipart_md5"]), st.st_mtime))
    cache.write_text(json.dumps(known, indent=1))
    return out


# --------------------------------------------------------------------------------------------------
# Servers


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _nginx_etag(obj: StoredObject) -> str:
    """The ETag nginx sends for a static file (hex mtime - hex size, quoted): the listing gives the same value
    as HEAD, and nginx matches If-Match only against it."""
    return f'"{int(obj.mtime):x}-{obj.size:x}"'


class ApiHandler(BaseHTTPRequestHandler):
    """S3 (path style: list, HEAD, GET) and OCI ListObjects, for the objects in ``server.objects``."""

    protocol_version = "HTTP/1.1"
    timeout = 120
    server: "ApiServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _s3_error(self, status: int, code: str, message: str) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{escape(message)}</Message></Error>").encode()
        self._send(status, body, "application/xml")

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = unquote(url.path)
        try:
            if path.startswith("/n/"):
                self._oci_list(path, query)
            elif not self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
                self._s3_error(403, "AccessDenied", "request not signed with SigV4")
            elif path.rstrip("/") == f"/{BUCKET}":
                self._s3_list(query)
            elif path.startswith(f"/{BUCKET}/"):
                self._s3_object(path[len(BUCKET) + 2:])
            else:
                self._s3_error(404, "NoSuchBucket", f"no bucket in {path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # OCI ListObjects (nginx forwards it here; it checked the signature scheme)
    def _oci_list(self, path: str, query: dict[str, str]) -> None:
        if path != f"/n/{NAMESPACE}/b/{BUCKET}/o":
            body = json.dumps({"code": "BucketNotFound", "message": f"no bucket at {path}"}).encode()
            self._send(404, body, "application/json")
            return
        fields = {f.strip() for f in query.get("fields", "name").split(",")} | {"name"}
        limit = min(int(query.get("limit", "1000")), 1000)
        prefix, start, start_after = query.get("prefix", ""), query.get("start", ""), query.get("startAfter", "")
        names = [o for o in self.server.objects if o.name.startswith(prefix)
                 and o.name >= start and (not start_after or o.name > start_after)]
        objects, prefixes = [], set()
        for o in names:
            if query.get("delimiter") == "/" and "/" in o.name[len(prefix):]:
                prefixes.add(prefix + o.name[len(prefix):].split("/", 1)[0] + "/")
                continue
            summary = {"name": o.name, "size": o.size, "etag": _nginx_etag(o), "md5": o.oci_listing_md5,
                       "timeCreated": _iso(o.mtime), "timeModified": _iso(o.mtime), "storageTier": "Standard",
                       "archivalState": None}
            objects.append({k: v for k, v in summary.items() if k in fields})
        result: dict[str, object] = {"objects": objects[:limit], "prefixes": sorted(prefixes)}
        if len(objects) > limit:
            result["nextStartWith"] = objects[limit]["name"]
        self._send(200, json.dumps(result).encode(), "application/json",
                   {"opc-request-id": f"bench-{time.monotonic_ns()}"})

    def _s3_list(self, query: dict[str, str]) -> None:
        if query.get("list-type") != "2":
            self._s3_error(400, "InvalidRequest", "only ListObjectsV2 is served")
            return
        prefix = query.get("prefix", "")
        max_keys = min(int(query.get("max-keys", "1000")), 1000)
        after = query.get("continuation-token") or query.get("start-after", "")
        url_encode = query.get("encoding-type") == "url"
        keys = [o for o in self.server.objects if o.name.startswith(prefix) and o.name > after]
        page, truncated = keys[:max_keys], len(keys) > max_keys

        def enc(s: str) -> str:
            return escape(quote(s, safe="/") if url_encode else s)

        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                 f"<Name>{BUCKET}</Name><Prefix>{enc(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>",
                 f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>"]
        if url_encode:
            parts.append("<EncodingType>url</EncodingType>")
        for o in page:
            parts.append(f"<Contents><Key>{enc(o.name)}</Key><LastModified>{_iso(o.mtime)}</LastModified>"
                         f"<ETag>{escape(o.s3_etag)}</ETag><Size>{o.size}</Size>"
                         "<StorageClass>STANDARD</StorageClass></Contents>")
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(page[-1].name)}</NextContinuationToken>")
        parts.append("</ListBucketResult>")
        self._send(200, "".join(parts).encode(), "application/xml")

    def _s3_object(self, key: str) -> None:
        obj = self.server.by_name.get(key)
        if obj is None:
            self._s3_error(404, "NoSuchKey", f"no key {key}")
            return
        if_match = self.headers.get("If-Match")
        if if_match and if_match.strip() not in ("*", obj.s3_etag):
            self._s3_error(412, "PreconditionFailed", f"If-Match {if_match} != {obj.s3_etag}")
            return
        start, end, status = 0, obj.size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            spec = rng.strip().removeprefix("bytes=")
            first, _, last = spec.partition("-")
            if first:
                start, end = int(first), min(int(last), obj.size - 1) if last else obj.size - 1
            else:
                start = max(obj.size - int(last), 0)
            if start > end or start >= obj.size:
                self._s3_error(416, "InvalidRange", f"{rng} outside 0-{obj.size - 1}")
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", obj.s3_etag)
        self.send_header("Last-Modified", formatdate(obj.mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("x-amz-request-id", f"bench{time.monotonic_ns()}")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{obj.size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        sock = self.connection.fileno()
        with open(self.server.model / obj.path, "rb") as f:
            offset, left = start, end - start + 1
            while left:
                try:
                    sent = os.sendfile(sock, f.fileno(), offset, min(left, 1 << 30))
                except BlockingIOError:  # the socket has a timeout, so it is non-blocking underneath
                    if not select.select([], [sock], [], self.timeout)[1]:
                        raise BrokenPipeError("client stopped reading") from None
                    continue
                if sent == 0:
                    raise BrokenPipeError("client went away")
                offset, left = offset + sent, left - sent


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, model: Path, objects: list[StoredObject]) -> None:
        super().__init__(("127.0.0.1", 0), ApiHandler)
        self.errors = 0
        self.model, self.objects = model, sorted(objects, key=lambda o: o.name)
        self.by_name = {o.name: o for o in objects}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        self.errors += 1
        print(f"object-store API server: {sys.exc_info()[1]!r} (client {client_address[1]})", file=sys.stderr)


def nginx_config(work: Path, model: Path, objects: list[StoredObject], port: int, api_port: int) -> str:
    """OCI Object Storage in nginx: namespace, objects (GET/HEAD/Range), ListObjects proxied to the API server."""
    base = f"/n/{NAMESPACE}/b/{BUCKET}/o"
    md5_map = "".join(f'    "{base}/{o.name}" "{o.md5_b64}";\n' for o in objects if not o.oci_multipart_md5)
    mp_map = "".join(f'    "{base}/{o.name}" "{o.oci_multipart_md5}";\n' for o in objects if o.oci_multipart_md5)
    tmp = work / "nginx-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return f"""
daemon off; worker_processes 2; pid {work}/nginx.pid; error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000; default_type application/octet-stream;
  map_hash_bucket_size 256;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  map $uri $oci_content_md5 {{
{md5_map}    default "";
  }}
  map $uri $oci_multipart_md5 {{
{mp_map}    default "";
  }}
  server {{
    listen 127.0.0.1:{port};
    if ($http_authorization !~ "^Signature ") {{ return 401; }}
    location = /n/ {{ default_type application/json; return 200 '"{NAMESPACE}"'; }}
    location = {base} {{ proxy_pass http://127.0.0.1:{api_port}; }}
    location {base}/{PREFIX} {{
      alias {model}/;
      add_header Content-MD5 $oci_content_md5;
      add_header opc-multipart-md5 $oci_multipart_md5;
      add_header opc-request-id $request_id;
    }}
  }}
}}
"""


class Stores:
    """The API server (thread) and nginx (process) for the duration of the benchmark."""

    def __init__(self, work: Path, model: Path, objects: list[StoredObject]) -> None:
        self.work, self.model, self.objects = work, model, objects

    def __enter__(self) -> "Stores":
        self.api = ApiServer(self.model, self.objects)
        self.api_thread = threading.Thread(target=self.api.serve_forever, name="object-store-api", daemon=True)
        self.api_thread.start()
        self.oci_port = _dl.free_port()
        conf = self.work / "nginx-oci.conf"
        conf.write_text(nginx_config(self.work, self.model, self.objects, self.oci_port, self.api.server_address[1]))
        self.nginx = subprocess.Popen(["nginx", "-c", str(conf)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.oci_port), timeout=1):
                    break
            except OSError:
                if self.nginx.poll() is not None or time.monotonic() > deadline:
                    err = self.nginx.stderr.read().decode(errors="replace") if self.nginx.stderr else ""
                    self.__exit__()
                    raise RuntimeError(f"nginx did not start: {err.strip()}") from None
                time.sleep(0.05)
        return self

    @property
    def oci_url(self) -> str:
        return f"http://127.0.0.1:{self.oci_port}"

    def __exit__(self, *exc: object) -> None:
        if getattr(self, "nginx", None) is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGTERM)
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        self.api.shutdown()
        self.api.server_close()


# --------------------------------------------------------------------------------------------------
# Credentials for the clients


def oci_config(work: Path) -> Path:
    """A user-principal OCI config file and API key (fingerprint = MD5 of the DER public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key_file, config = work / "oci_api_key.pem", work / "oci-config"
    if not key_file.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    public = load_pem_private_key(key_file.read_bytes(), None).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    fingerprint = ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())
    config.write_text(f"[DEFAULT]\nuser=ocid1.user.oc1..aaaabenchuser\nfingerprint={fingerprint}\n"
                      f"key_file={key_file}\ntenancy=ocid1.tenancy.oc1..aaaabenchtenancy\nregion=us-ashburn-1\n")
    key_file.chmod(0o600)
    config.chmod(0o600)
    return config


def s3_env(work: Path) -> dict[str, str]:
    config = work / "aws-config"
    config.write_text(f"[default]\nregion = {REGION}\ns3 =\n  addressing_style = path\n"
                      f"  max_concurrent_requests = {CONCURRENCY}\n")
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true"}


# --------------------------------------------------------------------------------------------------
# The tools


@dataclass
class Tool:
    name: str
    store: str  # "OCI" or "S3"
    verifies: str
    command: list[str]
    dest_of: str = ""  # the tool writes into <dest>/<dest_of> (the oci CLI keeps the object name's prefix)
    runs: list[_dl.Outcome] = field(default_factory=list)


BOTO3_CODE = """
import os, sys, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
endpoint, bucket, prefix, dest, concurrency = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
config = TransferConfig(max_concurrency=int(concurrency))
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for obj in page.get("Contents", []):
        path = os.path.join(dest, obj["Key"][len(prefix):])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, obj["Key"], path, Config=config)
"""

MODELAGENT_CODE = """
import json, sys, modelagent
uri, dest, parameters = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
result = modelagent.download(uri, dest, progress=False, parameters=parameters)
if result.unverified:
    sys.exit(f"not verified: {result.unverified}")
"""


ENGINE_CODE = """
import json, sys
from modelagent import _core
options = _core.DownloadOptions()
options.max_connections = int(sys.argv[3])
_core.run_download(json.load(open(sys.argv[1])), sys.argv[2], options)
"""


def engine_plan(work: Path, store: str, stores: Stores) -> Path:
    """The engine's plan for the same objects (URLs, sizes, MD5s), with a fixed Authorization header."""
    entries = []
    for o in stores.objects:
        if store == "OCI":
            url = f"{stores.oci_url}/n/{NAMESPACE}/b/{BUCKET}/o/{quote(o.name, safe='')}"
            md5, parts = (o.oci_multipart_md5 or o.md5_b64).partition("-")[::2]
            auth = "Signature bench"
        else:
            url = f"{stores.api.url}/{BUCKET}/{quote(o.name, safe='/')}"
            md5, parts = o.s3_etag.strip('"').partition("-")[::2]
            auth = "AWS4-HMAC-SHA256 bench"
        digest = ({"kind": "md5-multipart", "value": md5, "parts": int(parts)} if parts
                  else {"kind": "md5", "value": md5})
        entries.append({"path": o.path, "url": url, "size": o.size, "digest": digest,
                        "headers": {"Authorization": auth}})
    plan = work / f"engine-plan-{store.lower()}.json"
    plan.write_text(json.dumps(entries, indent=1))
    return plan


def make_tools(names: list[str], stores: Stores, work: Path) -> list[Tool]:
    py = sys.executable
    oci_cfg = oci_config(work)
    oci_bin = shutil.which("oci", path=f"{Path(py).parent}{os.pathsep}{os.environ.get('PATH', '')}") or "oci"
    oci_uri = f"oci://n/{NAMESPACE}/b/{BUCKET}/o/{PREFIX.rstrip('/')}"
    s3_uri = f"s3://{BUCKET}/{PREFIX.rstrip('/')}"
    catalogue = {
        "modelagent-oci": Tool("modelagent `oci://`", "OCI", "yes (MD5 / multipart MD5 of every byte), fsync",
                               [py, "-c", MODELAGENT_CODE, oci_uri, "{dest}", json.dumps(
                                   {"auth": "UserPrincipal", "config_file": str(oci_cfg),
                                    "endpoint": stores.oci_url})]),
        "engine-oci": Tool("modelagent engine (`_core.run_download`, script's plan, fixed auth header)", "OCI",
                           "yes (MD5 / multipart MD5 of every byte), fsync",
                           [py, "-c", ENGINE_CODE, str(engine_plan(work, "OCI", stores)), "{dest}", str(CONCURRENCY)]),
        "oci-cli": Tool(f"oci CLI `os object bulk-download` ({CONCURRENCY} parallel ops)", "OCI",
                        "no (bytes written as streamed, MD5 headers ignored)",
                        [oci_bin, "--config-file", str(oci_cfg), "--endpoint", stores.oci_url, "os", "object",
                         "bulk-download", "-ns", NAMESPACE, "-bn", BUCKET, "--prefix", PREFIX,
                         "--dest-dir", "{dest}", "--overwrite", "--parallel-operations-count", str(CONCURRENCY)],
                        dest_of=PREFIX.rstrip("/")),
        "modelagent-s3": Tool("modelagent `s3://`", "S3", "yes (ETag MD5 / multipart MD5 of every byte), fsync",
                              [py, "-c", MODELAGENT_CODE, s3_uri, "{dest}", json.dumps(
                                  {"endpoint": stores.api.url, "region": REGION, "path_style": "true"})]),
        "engine-s3": Tool("modelagent engine (`_core.run_download`, script's plan, fixed auth header)", "S3",
                          "yes (MD5 / multipart MD5 of every byte), fsync",
                          [py, "-c", ENGINE_CODE, str(engine_plan(work, "S3", stores)), "{dest}", str(CONCURRENCY)]),
        "boto3": Tool(f"boto3 `download_file` per object, TransferConfig(max_concurrency={CONCURRENCY})", "S3",
                      "no (ETag only sent as If-Match; no checksum on ranged GETs)",
                      [py, "-c", BOTO3_CODE, stores.api.url, BUCKET, PREFIX, "{dest}", str(CONCURRENCY)]),
        "aws-cli": Tool(f"aws CLI `s3 cp --recursive` ({CONCURRENCY} requests)", "S3",
                        "no (as boto3: same transfer manager)",
                        [py, "-m", "awscli", "s3", "cp", "--recursive", "--only-show-errors", "--no-progress",
                         "--endpoint-url", stores.api.url, f"s3://{BUCKET}/{PREFIX}", "{dest}"]),
    }
    tools = []
    for name in names:
        if name not in catalogue:
            raise SystemExit(f"--tools: unknown tool {name!r} (known: {', '.join(catalogue)})")
        if name == "aws-cli" and importlib.util.find_spec("awscli") is None:
            print("aws-cli: awscli does not import with this Python; skipped", file=sys.stderr)
            continue
        tools.append(catalogue[name])
    return tools


def timed(cmd: list[str], env: dict[str, str] | None = None,
          timeout: float | None = None) -> tuple[float, float, int, str]:
    """Runs cmd after a sync; returns wall seconds, CPU seconds of its processes, exit status and stderr."""
    subprocess.run(["sync"], check=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
        code, err = proc.returncode, proc.stderr.decode(errors="replace").strip()
    except subprocess.TimeoutExpired:
        code, err = -1, f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), code, err


def run_once(tool: Tool, out: Path, digests: dict[str, str], total: int, env: dict[str, str],
             timeout: float) -> _dl.Outcome:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    dest = out / tool.dest_of if tool.dest_of else out
    seconds, cpu, code, err = timed([str(out) if part == "{dest}" else part for part in tool.command], env, timeout)
    nbytes = sum((dest / p).stat().st_size for p in digests if (dest / p).exists())
    ok = code == 0 and nbytes == total
    note = ""
    if code != 0:
        note = (err.splitlines() or [f"exit status {code}"])[-1][:160]
    elif nbytes != total:
        note = f"{nbytes} of {total} bytes on disk"
    elif not _dl.check_bytes(dest, digests):
        ok, note = False, "wrong bytes on disk"
    shutil.rmtree(out, ignore_errors=True)
    return _dl.Outcome(tool.name, tool.store, seconds, cpu, nbytes, tool.verifies, ok, note)


def median_run(runs: list[_dl.Outcome]) -> _dl.Outcome | None:
    good = sorted((r for r in runs if r.ok), key=lambda r: r.seconds)
    return good[(len(good) - 1) // 2] if len(good) == len(runs) and good else None


def table(store: str, tools: list[Tool], dd: list[_dl.Outcome]) -> str:
    medians = {t.name: median_run(t.runs) for t in tools}
    peers = [m.seconds for t in tools if not t.name.startswith("modelagent") and (m := medians[t.name])]
    fastest = min(peers, default=None)
    dd_median = statistics.median(r.seconds for r in dd) if dd else None
    lines = [f"| tool | wall s (median) | MB/s | CPU s/GB | runs (s) | verifies every byte | vs fastest peer | vs dd |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in tools:
        m = medians[t.name]
        runs = " / ".join(f"{r.seconds:.2f}" if r.ok else "failed" for r in t.runs)
        if m is None:
            notes = "; ".join(sorted({r.note for r in t.runs if not r.ok}))
            lines.append(f"| {t.name} FAILED: {notes} | - | - | - | {runs} | {t.verifies} | - | - |")
            continue
        vs_peer = f"{fastest / m.seconds:.2f}x" if fastest else "-"
        vs_dd = f"{m.seconds / dd_median:.2f}x time" if dd_median else "-"
        lines.append(f"| {t.name} | {m.seconds:.2f} | {m.nbytes / MB / m.seconds:.0f} | "
                     f"{m.cpu_seconds / (m.nbytes / 1e9):.2f} | {runs} | {t.verifies} | {vs_peer} | {vs_dd} |")
    if dd:
        d = sorted(dd, key=lambda r: r.seconds)[(len(dd) - 1) // 2]
        lines.append(f"| dd `bs=1M conv=fsync` (same byte count, same disk) | {d.seconds:.2f} | "
                     f"{d.nbytes / MB / d.seconds:.0f} | {d.cpu_seconds / (d.nbytes / 1e9):.2f} | "
                     f"{' / '.join(f'{r.seconds:.2f}' for r in dd)} | - | | 1.00x |")
    return "\n".join(lines)


def versions() -> str:
    from importlib import metadata

    found = []
    for dist in ("modelagent", "oci-cli", "oci", "boto3", "s3transfer", "awscli"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} absent")
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    return ", ".join(found + [f"nginx {nginx}"])


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/modelagent-bench-os"),
                        help="model and downloads go here (same disk for every tool)")
    parser.add_argument("--size-gb", type=float, default=2.0, help="model size in GB (10^9 bytes)")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tools", default="modelagent-oci,engine-oci,oci-cli,modelagent-s3,engine-s3,boto3,aws-cli",
                        help="comma list of modelagent-oci, engine-oci, oci-cli, modelagent-s3, engine-s3, boto3, "
                             "aws-cli")
    parser.add_argument("--no-dd", action="store_true", help="skip the dd reference")
    parser.add_argument("--clean", action="store_true", help="delete --workdir (the model) at the end")
    parser.add_argument("--timeout", type=float, default=1800, help="per run, seconds")
    args = parser.parse_args(argv)
    if args.shards < 1 or args.repeats < 1 or args.size_gb <= 0:
        parser.error("--shards, --repeats and --size-gb must be positive")

    args.workdir.mkdir(parents=True, exist_ok=True)
    small = 9 * MiB + 4096  # tokenizer and JSON files written by download.build_model
    shard_bytes = max(int((args.size_gb * 1e9 - small) / args.shards), MiB)
    root = args.workdir / f"model-{args.shards}x{shard_bytes}"
    print(f"building {root} (if absent) ...", file=sys.stderr)
    digests = _dl.build_model(root, args.shards, shard_bytes)
    objects = describe_objects(root / "model", list(digests))
    total = sum(o.size for o in objects)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
          f"Python {platform.python_version()}; workdir {args.workdir}")
    print(f"model: {len(objects)} objects, {total / 1e9:.2f} GB; multipart-style: "
          f"OCI {sum(1 for o in objects if o.oci_multipart_md5)} (128 MiB parts), "
          f"S3 {sum(1 for o in objects if '-' in o.s3_etag)} (8 MiB parts); {args.repeats} runs per tool")
    print(f"versions: {versions()}")
    print(f"load average at start: {load()}")
    env = dict(os.environ, OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True", **s3_env(args.workdir))
    dd: list[_dl.Outcome] = []
    with Stores(args.workdir, root / "model", objects) as stores:
        tools = make_tools([t for t in args.tools.split(",") if t], stores, args.workdir)
        for repeat in range(args.repeats):
            for tool in tools:
                print(f"run {repeat + 1}/{args.repeats}: {tool.name} ...", file=sys.stderr)
                r = run_once(tool, args.workdir / "out", digests, total, env, args.timeout)
                print(f"  {r.seconds:.2f} s, {r.cpu_seconds:.2f} CPU s{'' if r.ok else ' FAILED: ' + r.note}",
                      file=sys.stderr)
                tool.runs.append(r)
            if not args.no_dd:
                dd.append(_dl.run_dd(args.workdir / "out", total))
    print(f"load average at end: {load()}\n")
    for store in ("OCI", "S3"):
        chosen = [t for t in tools if t.store == store]
        if chosen:
            print(f"### {store} ({total / 1e9:.2f} GB, median of {args.repeats})\n")
            print(table(store, chosen, dd))
            print()
    print("vs fastest peer: the fastest non-modelagent tool's median time divided by this tool's "
          "(above 1 = faster). CPU is the tool's own (user + system), not the servers'.")
    if args.clean:
        shutil.rmtree(args.workdir, ignore_errors=True)
    failed = [t.name for t in tools if median_run(t.runs) is None]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
