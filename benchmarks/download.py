#!/usr/bin/env python3
"""Benchmark: downloading a synthetic multi-GB model over loopback, modelagent vs its peers.

One script, one machine, the same bytes for every tool:

- a synthetic model (config.json, tokenizer files and several multi-GB safetensors shards with valid
  headers) is written once into --workdir;
- it is served twice on loopback: by the fake Hugging Face hub (``modelagent.testing.hf_hub``, LFS
  files redirected to its CDN host 127.0.0.2) and by nginx (Debian) as plain files;
- each tool downloads it into a fresh directory on the same disk:
    modelagent (hf:// through the fake hub), modelagent-engine (the raw engine on nginx URLs),
    huggingface_hub.snapshot_download (fake hub), aria2c -x16 -s16 (nginx, with per-file SHA-256 so it
    verifies too), curl --parallel (nginx, no verification);
- ``dd bs=1M conv=fsync`` of the same byte count to the same disk gives the machine's own write limit.

A second, throttled case limits every server connection to --throttle-mbps, where parallel ranges matter.
Prints Markdown tables: wall seconds, MB/s, CPU seconds per GB, whether every byte was verified, and the
ratio to the fastest peer and to dd. With --repeats N every tool (and dd) runs N times in turn and the run
with the median wall time is reported; the load average at the start of each case is printed beside it.

Reference rows (not peers, never "the fastest peer"): ``curl+fsync`` is curl followed by an fsync of every
file it wrote (``sync FILE...``), i.e. curl made as durable as the others; ``curl+sha256sum`` additionally
hashes every file afterwards, as a verifying curl pipeline would.

Adding a tool: write a function ``(ctx: Context) -> Command`` and register it in TOOLS (or REFERENCES).
Adding a source (another server in front of the same files): start it in Servers and give Context its URL.
"""

from __future__ import annotations

import os
import sys

# benchmarks/inspect.py is named like the stdlib module `inspect`; keep this folder off the import path so
# that `import inspect` (done by dataclasses and others) finds the real one.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import argparse
import hashlib
import json
import platform
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MB = 1_000_000
MiB = 1 << 20
REPO = "bench/synthetic-model"


@dataclass
class Outcome:
    tool: str
    source: str
    seconds: float
    cpu_seconds: float
    nbytes: int
    verified: str
    ok: bool
    note: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_shard(path: Path, size: int, seed: int) -> str:
    """A safetensors file of exactly `size` bytes with one U8 tensor; returns its SHA-256 hex."""
    header = {"__metadata__": {"format": "pt"}}
    blob = b""
    for _ in range(2):  # the header length depends on the data size, which depends on the header length
        data_size = size - 8 - len(blob)
        header["weight"] = {"dtype": "U8", "shape": [data_size], "data_offsets": [0, data_size]}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
    data_size = size - 8 - len(blob)
    sha = hashlib.sha256()
    block = hashlib.shake_256(f"modelagent-bench-{seed}".encode()).digest(8 * MiB)
    with open(path, "wb") as f:
        head = struct.pack("<Q", len(blob)) + blob
        f.write(head)
        sha.update(head)
        remaining = data_size
        counter = 0
        while remaining:
            chunk = block[: min(len(block), remaining)]
            # vary each block so no two blocks are equal (defeats any dedup or compression)
            chunk = counter.to_bytes(8, "little") + chunk[8:] if len(chunk) >= 8 else chunk
            f.write(chunk)
            sha.update(chunk)
            remaining -= len(chunk)
            counter += 1
    return sha.hexdigest()


def build_model(root: Path, shards: int, shard_bytes: int) -> dict[str, str]:
    """Writes the model under root (reusing it when already complete); returns path -> sha256."""
    manifest = root / "manifest.json"
    if manifest.exists():
        digests = json.loads(manifest.read_text())
        if all((root / "model" / p).exists() for p in digests):
            return digests
    model = root / "model"
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir(parents=True)
    digests: dict[str, str] = {}
    small = {
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                   "hidden_size": 4096, "num_hidden_layers": 32}, indent=2).encode(),
        "tokenizer_config.json": b'{"model_max_length": 131072}\n',
        "generation_config.json": b'{"do_sample": true}\n',
        "tokenizer.json": hashlib.shake_256(b"tokenizer").digest(9 * MiB),
    }
    for name, data in small.items():
        (model / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        digests[name] = write_shard(model / name, shard_bytes, i)
    manifest.write_text(json.dumps(digests))
    return digests


class Servers:
    """The fake hub and nginx serving the same model directory."""

    def __init__(self, work: Path, model: Path, throttle: int | None) -> None:
        self.work, self.model, self.throttle = work, model, throttle
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> "Servers":
        url_file = self.work / "hub-url.txt"
        url_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "modelagent.testing.hf_hub", "--repo", f"{REPO}={self.model}",
               "--url-file", str(url_file), "--digest-cache", str(self.work / "hub-digests.json")]
        if self.throttle:
            cmd += ["--throttle", str(self.throttle)]
        self.procs.append(subprocess.Popen(cmd))
        self.nginx_port = free_port()
        conf = self.work / "nginx.conf"
        limit = f"limit_rate {self.throttle};" if self.throttle else ""
        conf.write_text(f"""
daemon off; worker_processes 2; pid {self.work}/nginx.pid; error_log {self.work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path {self.work}/nginx-tmp; proxy_temp_path {self.work}/nginx-tmp;
  fastcgi_temp_path {self.work}/nginx-tmp; uwsgi_temp_path {self.work}/nginx-tmp; scgi_temp_path {self.work}/nginx-tmp;
  server {{ listen 127.0.0.1:{self.nginx_port}; root {self.model}; {limit} }}
}}
""")
        (self.work / "nginx-tmp").mkdir(exist_ok=True)
        self.procs.append(subprocess.Popen(["nginx", "-c", str(conf)]))
        deadline = time.monotonic() + 600  # the hub hashes the shards once (cached in hub-digests.json)
        while not url_file.exists() or not url_file.read_text().strip():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("servers did not start")
            time.sleep(0.1)
        self.hub_url = url_file.read_text().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@dataclass
class Context:
    """What a tool needs to build its command line for one case."""

    work: Path
    dest: Path
    digests: dict[str, str]
    hub_url: str
    nginx_url: str
    plan_file: Path
    connections: int


@dataclass
class Command:
    argv: list[str]
    source: str
    verified: str


def tool_modelagent(ctx: Context) -> Command:
    cmd = [sys.executable, "-m", "modelagent", "download", f"hf://{REPO}", "--dest", str(ctx.dest), "--no-progress"]
    if ctx.connections:
        cmd += ["--connections", str(ctx.connections)]
    return Command(cmd, "fake hub", "yes (SHA-256 / git-blob SHA-1)")


def tool_modelagent_engine(ctx: Context) -> Command:
    code = ("import json,sys; from modelagent import _core; "
            f"o=_core.DownloadOptions(); o.max_connections={ctx.connections or 16}; "
            f"_core.run_download(json.load(open({str(ctx.plan_file)!r})), {str(ctx.dest)!r}, o)")
    return Command([sys.executable, "-c", code], "nginx", "yes (SHA-256)")


def tool_huggingface_hub(ctx: Context) -> Command:
    code = ("from huggingface_hub import snapshot_download; "
            f"snapshot_download({REPO!r}, local_dir={str(ctx.dest)!r})")
    return Command([sys.executable, "-c", code], "fake hub", "partly (sizes; no hash of fresh files)")


def tool_aria2c(ctx: Context) -> Command:
    listing = ctx.work / "aria2-input.txt"
    listing.write_text("".join(f"{ctx.nginx_url}/{p}\n  out={p}\n  checksum=sha-256={d}\n"
                               for p, d in ctx.digests.items()))
    cmd = ["aria2c", "-x16", "-s16", "-j16", "--file-allocation=none", "--check-integrity=true",
           "--console-log-level=warn", "--summary-interval=0", "-d", str(ctx.dest), "-i", str(listing)]
    return Command(cmd, "nginx", "yes (SHA-256, second read)")


def curl_argv(ctx: Context) -> list[str]:
    cmd = ["curl", "-sS", "--fail", "--parallel", "--parallel-max", "16"]
    for p in ctx.digests:
        cmd += ["-o", str(ctx.dest / p), f"{ctx.nginx_url}/{p}"]
    return cmd


def tool_curl(ctx: Context) -> Command:
    return Command(curl_argv(ctx), "nginx", "no (and no fsync)")


def shell_after_curl(ctx: Context, then: str) -> list[str]:
    files = " ".join(f"'{ctx.dest / p}'" for p in ctx.digests)
    curl = " ".join(f"'{a}'" for a in curl_argv(ctx))
    return ["sh", "-c", f"{curl} && {then.format(files=files)}"]


def ref_curl_fsync(ctx: Context) -> Command:
    return Command(shell_after_curl(ctx, "sync {files}"), "nginx", "no (fsync of every file afterwards)")


def ref_curl_sha256sum(ctx: Context) -> Command:
    return Command(shell_after_curl(ctx, "sha256sum {files} >/dev/null && sync {files}"), "nginx",
                   "yes (sha256sum afterwards, second read), fsync")


TOOLS: dict[str, Callable[[Context], Command]] = {
    "modelagent": tool_modelagent,
    "modelagent-engine": tool_modelagent_engine,
    "huggingface_hub": tool_huggingface_hub,
    "aria2c": tool_aria2c,
    "curl": tool_curl,
}
REFERENCES: dict[str, Callable[[Context], Command]] = {
    "curl+fsync": ref_curl_fsync,
    "curl+sha256sum": ref_curl_sha256sum,
}


def run_timed(tool: str, source: str, cmd: list[str], env: dict[str, str], dest: Path,
              digests: dict[str, str], expected_bytes: int, verified: str, timeout: float) -> Outcome:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    subprocess.run(["sync"], check=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    nbytes = sum((dest / p).stat().st_size for p in digests if (dest / p).exists())
    ok = proc.returncode == 0 and nbytes == expected_bytes
    last_line = (proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    note = "" if proc.returncode == 0 else last_line[:120]
    return Outcome(tool, source, seconds, cpu, nbytes, verified, ok, note)


def check_bytes(dest: Path, digests: dict[str, str]) -> bool:
    """After the timed run: every file hashes to its expected SHA-256 (not timed)."""
    for path, sha in digests.items():
        h = hashlib.sha256()
        with open(dest / path, "rb") as f:
            while chunk := f.read(8 * MiB):
                h.update(chunk)
        if h.hexdigest() != sha:
            return False
    return True


def median_run(runs: list[Outcome]) -> Outcome:
    """The run with the median wall time (a failed run wins, so failures are never hidden)."""
    failed = [r for r in runs if not r.ok]
    if failed:
        return failed[0]
    ordered = sorted(runs, key=lambda r: r.seconds)
    best = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        best.note = f"median of {len(runs)}: " + ", ".join(f"{r.seconds:.2f}" for r in runs)
    return best


def run_dd(out_root: Path, total: int) -> Outcome:
    dd_dest = out_root / "dd"
    dd_dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sync"], check=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={dd_dest / 'blob'}", "bs=1M", f"count={total // MiB}", "conv=fsync"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(dd_dest, ignore_errors=True)
    return Outcome("dd bs=1M conv=fsync", "/dev/zero", seconds, cpu, (total // MiB) * MiB, "-", True)


def bench_case(work: Path, model: Path, digests: dict[str, str], throttle: int | None, tools: list[str],
               connections: int, timeout: float, repeats: int) -> list[Outcome]:
    total = sum((model / p).stat().st_size for p in digests)
    out_root = work / "out"
    runs: dict[str, list[Outcome]] = {t: [] for t in tools}
    runs["dd"] = []
    env = dict(os.environ, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(work / "hf-home"))
    with Servers(work, model, throttle) as servers:
        env["HF_ENDPOINT"] = servers.hub_url
        nginx = f"http://127.0.0.1:{servers.nginx_port}"
        plan = [{"path": p, "url": f"{nginx}/{p}", "size": (model / p).stat().st_size,
                 "digest": {"kind": "sha256", "value": d}} for p, d in digests.items()]
        plan_file = work / "plan.json"
        plan_file.write_text(json.dumps(plan))
        # Rounds rather than one tool's repeats back to back: a burst of load from elsewhere then
        # affects every tool, not just one.
        for _ in range(repeats):
            for tool in tools:
                dest = out_root / tool / "dest"
                make = TOOLS.get(tool) or REFERENCES.get(tool)
                if make is None:
                    raise SystemExit(f"unknown tool {tool}; known: {', '.join([*TOOLS, *REFERENCES])}")
                ctx = Context(work, dest, digests, servers.hub_url, nginx, plan_file, connections)
                command = make(ctx)
                r = run_timed(tool, command.source, command.argv, env, dest, digests, total, command.verified, timeout)
                if r.ok and not check_bytes(dest, digests):
                    r.ok, r.note = False, "wrong bytes on disk"
                runs[tool].append(r)
                shutil.rmtree(out_root / tool, ignore_errors=True)
            # the machine's own limit: the same byte count written by dd to the same disk
            runs["dd"].append(run_dd(out_root, total))
    shutil.rmtree(out_root, ignore_errors=True)
    return [median_run(runs[t]) for t in [*tools, "dd"]]


def table(title: str, results: list[Outcome]) -> str:
    peers = [r for r in results if r.ok and r.tool in TOOLS and not r.tool.startswith("modelagent")]
    fastest_peer = min((r.seconds for r in peers), default=None)
    dd = next((r for r in results if r.tool.startswith("dd")), None)
    lines = [f"### {title}", "",
             "| tool | source | wall s | MB/s | CPU s/GB | verifies every byte | vs fastest peer | vs dd |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        rate = r.nbytes / MB / r.seconds if r.seconds else 0
        cpu_gb = r.cpu_seconds / (r.nbytes / 1e9) if r.nbytes else 0
        vs_peer = f"{fastest_peer / r.seconds:.2f}x" if fastest_peer and r.ok else "-"
        vs_dd = f"{r.seconds / dd.seconds:.2f}x time" if dd and r.ok else "-"
        status = "" if r.ok else f" FAILED: {r.note}"
        if r.tool in REFERENCES:
            status += " (reference)"
        lines.append(f"| {r.tool}{status} | {r.source} | {r.seconds:.2f} | {rate:.0f} | {cpu_gb:.2f} | {r.verified} "
                     f"| {vs_peer} | {vs_dd} |")
    lines.append("")
    lines.append("vs fastest peer: the fastest non-modelagent tool's time divided by this tool's (above 1 = faster).")
    spreads = [f"{r.tool}: {r.note}" for r in results if r.ok and r.note.startswith("median")]
    if spreads:
        lines.append("Wall seconds of every run: " + "; ".join(spreads) + ".")
    return "\n".join(lines)


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average at start {one:.2f} / {five:.2f} / {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/modelagent-bench"),
                        help="model and downloads go here (same disk for every tool)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--shard-gib", type=float, default=2.0)
    parser.add_argument("--tools", default="modelagent,modelagent-engine,huggingface_hub,aria2c,curl")
    parser.add_argument("--connections", type=int, default=0, help="modelagent connections (0: default)")
    parser.add_argument("--throttle-mbps", type=float, default=25.0,
                        help="per-connection server rate for the throttled case (0 skips it)")
    parser.add_argument("--throttled-shard-gib", type=float, default=0.25)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool; the median is reported")
    parser.add_argument("--cases", default="fast,throttled",
                        help="which cases to run (fast, throttled, object-stores: OCI and S3 via object_stores.py)")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    cases = {c for c in args.cases.split(",") if c}
    repeats = max(1, args.repeats)

    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM; workdir {args.workdir}")
    fast_root = args.workdir / "fast"
    digests = build_model(fast_root, args.shards, int(args.shard_gib * 2**30))
    total = sum((fast_root / "model" / p).stat().st_size for p in digests)
    print(f"model: {len(digests)} files, {total / 1e9:.2f} GB\n")
    if "fast" in cases:
        load = load_text()
        results = bench_case(fast_root, fast_root / "model", digests, None, tools, args.connections, args.timeout,
                             repeats)
        print(table(f"Loopback, unthrottled ({total / 1e9:.2f} GB; {load})", results))
    if args.throttle_mbps > 0 and "throttled" in cases:
        slow_root = args.workdir / "throttled"
        slow_digests = build_model(slow_root, args.shards, int(args.throttled_shard_gib * 2**30))
        slow_total = sum((slow_root / "model" / p).stat().st_size for p in slow_digests)
        rate = int(args.throttle_mbps * MB)
        print()
        load = load_text()
        results = bench_case(slow_root, slow_root / "model", slow_digests, rate, tools, args.connections,
                             args.timeout, repeats)
        print(table(f"Throttled link: {args.throttle_mbps:g} MB/s per connection ({slow_total / 1e9:.2f} GB; "
                    f"{load})", results))
    if "object-stores" in cases:  # OCI and S3 against their own tools: benchmarks/object_stores.py
        sys.stdout.flush()
        script = Path(__file__).with_name("object_stores.py")
        subprocess.run([sys.executable, str(script), "--workdir", str(args.workdir / "object-stores"),
                        "--repeats", str(repeats), "--timeout", str(args.timeout)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
