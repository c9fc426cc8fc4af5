#!/usr/bin/env python3
"""Benchmark: model inspection over a synthetic 163-shard model, modelagent vs the safetensors library.

Builds a DeepSeek-V3-shaped model directory (config.json, model.safetensors.index.json and 163
safetensors shards with realistic header sizes; tensor data regions are sparse holes, so the shards take
almost no disk) and measures, on the same warm page cache:

- ``modelagent.inspect_model(dir)``: locate config.json, read every shard header with one bounded pread,
  validate it, count logical parameters, derive the full metadata;
- the ``safetensors`` Python library: ``safe_open`` every shard and read every tensor's shape
  (``get_slice(name).get_shape()``), summing element counts — the header-reading part alone.

Prints a Markdown table (wall and CPU seconds per run, median of --runs) and the ratio.
"""

from __future__ import annotations

import os
import sys

# This file is named like the stdlib module `inspect`; keep its folder off the import path so that
# `import inspect` (done by dataclasses and others) finds the real one.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import argparse
import json
import platform
import statistics
import struct
import tempfile
import time
from pathlib import Path

SHARDS = 163
LAYERS = 61
EXPERTS = 256
HIDDEN = 7168
MOE_INTERMEDIATE = 2048


def _tensor_names() -> list[tuple[str, str, list[int]]]:
    """Tensor names, dtypes and shapes shaped like DeepSeek-V3's checkpoint (FP8 experts + scales)."""
    tensors: list[tuple[str, str, list[int]]] = [
        ("model.embed_tokens.weight", "BF16", [129280, HIDDEN]),
        ("lm_head.weight", "BF16", [129280, HIDDEN]),
        ("model.norm.weight", "BF16", [HIDDEN]),
    ]
    for layer in range(LAYERS):
        p = f"model.layers.{layer}"
        tensors += [
            (f"{p}.input_layernorm.weight", "BF16", [HIDDEN]),
            (f"{p}.post_attention_layernorm.weight", "BF16", [HIDDEN]),
            (f"{p}.self_attn.q_a_proj.weight", "F8_E4M3", [1536, HIDDEN]),
            (f"{p}.self_attn.q_a_proj.weight_scale_inv", "F32", [12, 56]),
            (f"{p}.self_attn.q_b_proj.weight", "F8_E4M3", [24576, 1536]),
            (f"{p}.self_attn.q_b_proj.weight_scale_inv", "F32", [192, 12]),
            (f"{p}.self_attn.kv_a_proj_with_mqa.weight", "F8_E4M3", [576, HIDDEN]),
            (f"{p}.self_attn.kv_b_proj.weight", "F8_E4M3", [32768, 512]),
            (f"{p}.self_attn.o_proj.weight", "F8_E4M3", [HIDDEN, 16384]),
            (f"{p}.mlp.gate.weight", "BF16", [EXPERTS, HIDDEN]),
        ]
        for e in range(EXPERTS):
            for proj, shape in (("gate_proj", [MOE_INTERMEDIATE, HIDDEN]), ("up_proj", [MOE_INTERMEDIATE, HIDDEN]),
                                ("down_proj", [HIDDEN, MOE_INTERMEDIATE])):
                tensors.append((f"{p}.mlp.experts.{e}.{proj}.weight", "F8_E4M3", shape))
                tensors.append((f"{p}.mlp.experts.{e}.{proj}.weight_scale_inv", "F32",
                                [(shape[0] + 127) // 128, (shape[1] + 127) // 128]))
    return tensors


_DTYPE_BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1}


def build_model(root: Path) -> Path:
    model = root / "deepseek-v3-synthetic"
    model.mkdir()
    config = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "n_routed_experts": EXPERTS, "moe_intermediate_size": MOE_INTERMEDIATE,
        "max_position_embeddings": 163840, "torch_dtype": "bfloat16", "transformers_version": "4.46.3",
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
    }
    (model / "config.json").write_text(json.dumps(config, indent=2))
    tensors = _tensor_names()
    per_shard = (len(tensors) + SHARDS - 1) // SHARDS
    weight_map: dict[str, str] = {}
    total_size = 0
    for shard in range(SHARDS):
        name = f"model-{shard + 1:05d}-of-{SHARDS:06d}.safetensors"
        chunk = tensors[shard * per_shard:(shard + 1) * per_shard]
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for tname, dtype, shape in chunk:
            size = _DTYPE_BYTES[dtype]
            for d in shape:
                size *= d
            header[tname] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
            weight_map[tname] = name
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        with open(model / name, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            f.truncate(8 + len(blob) + offset)  # the tensor data is a sparse hole
        total_size += offset
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    return model


def time_runs(fn, runs: int) -> tuple[float, float, object]:
    walls, cpus, result = [], [], None
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the model (default: a temp dir)")
    args = parser.parse_args()

    import modelagent
    from safetensors import safe_open

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        model = build_model(Path(tmp))
        shards = sorted(model.glob("*.safetensors"))
        header_bytes = sum(struct.unpack("<Q", open(s, "rb").read(8))[0] for s in shards)

        def with_modelagent() -> int:
            return modelagent.inspect_model(model).parameter_count

        def with_safetensors() -> int:
            total = 0
            for shard in shards:
                with safe_open(str(shard), framework="numpy") as f:
                    for key in f.keys():
                        n = 1
                        for d in f.get_slice(key).get_shape():
                            n *= d
                        total += n
            return total

        with_modelagent(), with_safetensors()  # warm the page cache for both
        ma_wall, ma_cpu, ma_count = time_runs(with_modelagent, args.runs)
        st_wall, st_cpu, st_count = time_runs(with_safetensors, args.runs)

    import safetensors

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"modelagent {modelagent.__version__}, safetensors {safetensors.__version__}")
    print(f"model: {SHARDS} shards, {len(_tensor_names())} tensors, {header_bytes / 1e6:.1f} MB of headers; "
          f"median of {args.runs} warm runs")
    print()
    print("| tool | what it does | wall s | CPU s | ratio (wall) |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| modelagent.inspect_model | full metadata (logical count {ma_count:,}) | {ma_wall:.3f} | {ma_cpu:.3f} | 1.00 |")
    print(f"| safetensors safe_open + get_shape | element count only ({st_count:,}) | {st_wall:.3f} | {st_cpu:.3f} "
          f"| {st_wall / ma_wall:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
