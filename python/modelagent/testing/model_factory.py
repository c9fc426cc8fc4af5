"""Synthetic model repositories for tests and benchmarks: a config.json, tokenizer files and
safetensors shards of exact sizes with valid headers (pseudo-random tensor data, deterministic per seed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelagent.testing.hf_hub import FakeHub

__all__ = [
    "DEFAULT_CONFIG",
    "DTYPE_SIZES",
    "SyntheticModel",
    "add_synthetic_model",
    "write_safetensors",
    "write_synthetic_model",
]

DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip

DEFAULT_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 128,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "transformers_version": "4.44.0",
}

_WRITE_BLOCK = 4 << 20
_PAGE = 4096


@dataclasses.dataclass(frozen=True)
class SyntheticModel:
    """A model written to ``root``; ``files`` maps repo paths to files on disk."""

    root: Path
    files: dict[str, Path]
    shards: list[str]

    def repo_files(self) -> dict[str, Path]:
        """Mapping suitable for :meth:`FakeHub.add_repo`."""
        return dict(self.files)


def _header_bytes(tensors: list[tuple[str, str, list[int], int]], metadata: Mapping[str, str] | None) -> bytes:
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, dtype, shape, nbytes in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)


def _shape(count: int) -> list[int]:
    return [count // 1024, 1024] if count >= 1024 and count % 1024 == 0 else [count]


def _plan_tensors(size: int, prefix: str, dtype: str, metadata: Mapping[str, str] | None) -> tuple[bytes, int]:
    elem = DTYPE_SIZES[dtype]
    data = size - 8
    for _ in range(8):
        count, rest = divmod(data, elem)
        tensors = [(f"{prefix}.weight", dtype, _shape(count), count * elem)]
        if rest:
            tensors.append((f"{prefix}.tail", "U8", [rest], rest))
        header = _header_bytes(tensors, metadata)
        new_data = size - 8 - len(header)
        if new_data == data:
            return header, data
        data = new_data
        if data < 0:
            break
    raise ValueError(f"safetensors size {size} is too small for a valid header (needs about 256 bytes)")


def write_safetensors(
    path: str | os.PathLike[str],
    size: int,
    *,
    tensor_prefix: str = "model.weight",
    dtype: str = "BF16",
    seed: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> list[str]:
    """Write a safetensors file of exactly ``size`` bytes; returns the tensor names it holds.

    The file holds one ``<prefix>.weight`` tensor of ``dtype`` (2-D when its element count allows)
    plus, when the data length is not a multiple of the element size, a small U8 ``<prefix>.tail``.
    Tensor bytes are deterministic per ``seed``: a pseudo-random block repeated with every 4 KiB page
    stamped with the seed and its own offset, so no two pages are alike (a range written at the wrong
    offset is detectable) while multi-GB files are written at disk speed.
    """
    if dtype not in DTYPE_SIZES:
        raise ValueError(f"dtype {dtype!r} is not a safetensors dtype ({', '.join(DTYPE_SIZES)})")
    if size < 0:
        raise ValueError(f"safetensors size must be >= 0, got {size}")
    header, data_len = _plan_tensors(size, tensor_prefix, dtype, {"format": "pt", **(metadata or {})})
    base = random.Random(seed).randbytes(min(data_len, _WRITE_BLOCK))
    stamp = seed & 0xFFFFFFFFFFFFFFFF
    names = [name for name in json.loads(header) if name != "__metadata__"]
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        done = 0
        while done < data_len:
            n = min(data_len - done, _WRITE_BLOCK)
            block = bytearray(base[:n])
            for off in range(0, n - 15, _PAGE):
                struct.pack_into("<QQ", block, off, stamp, done + off)
            f.write(block)
            done += n
    return names


def _tokenizer_files(vocab_size: int) -> dict[str, bytes]:
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for i in range(3, vocab_size):
        vocab[f"tok{i}"] = i
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t, i in (("<unk>", 0), ("<s>", 1), ("</s>", 2))
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }
    tokenizer_config = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": 512,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
    }
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    return {
        "tokenizer.json": json.dumps(tokenizer, indent=2).encode(),
        "tokenizer_config.json": json.dumps(tokenizer_config, indent=2).encode(),
        "special_tokens_map.json": json.dumps(special, indent=2).encode(),
    }


def write_synthetic_model(
    root: str | os.PathLike[str],
    *,
    shard_sizes: Sequence[int] = (1 << 20, 1 << 20),
    config: Mapping[str, Any] | None = None,
    tokenizer: bool = True,
    dtype: str = "BF16",
    seed: int = 0,
    extra_files: Mapping[str, bytes | str] | None = None,
) -> SyntheticModel:
    """Write a small but well-formed Hugging Face model directory under ``root``.

    Files: ``config.json`` (``config`` or a tiny Llama config), ``generation_config.json``, tokenizer
    files (unless ``tokenizer=False``), one safetensors file per entry of ``shard_sizes`` (each exactly
    that many bytes; ``model.safetensors`` for one shard, else ``model-0000i-of-0000n.safetensors`` plus
    ``model.safetensors.index.json``) and ``extra_files`` (repo path -> content).
    """
    if not shard_sizes:
        raise ValueError("shard_sizes must name at least one shard")
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    cfg = dict(DEFAULT_CONFIG if config is None else config)
    small: dict[str, bytes] = {
        "config.json": json.dumps(cfg, indent=2).encode(),
        "generation_config.json": json.dumps(
            {"bos_token_id": cfg.get("bos_token_id", 1), "eos_token_id": cfg.get("eos_token_id", 2), "_from_model_config": True},
            indent=2,
        ).encode(),
    }
    if tokenizer:
        small.update(_tokenizer_files(int(cfg.get("vocab_size", 128))))

    n = len(shard_sizes)
    shard_names = (
        ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    )
    weight_map: dict[str, str] = {}
    total = 0
    for i, (name, size) in enumerate(zip(shard_names, shard_sizes)):
        tensors = write_safetensors(
            root_path / name, size, tensor_prefix=f"model.layers.{i}", dtype=dtype, seed=seed * 1_000_003 + i
        )
        for t in tensors:
            weight_map[t] = name
        with open(root_path / name, "rb") as f:
            total += size - 8 - int.from_bytes(f.read(8), "little")
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        small["model.safetensors.index.json"] = json.dumps(index, indent=2).encode()
    for rel, content in (extra_files or {}).items():
        small[rel] = content.encode() if isinstance(content, str) else content

    files: dict[str, Path] = {}
    for rel, content in small.items():
        target = root_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        files[rel] = target
    for name in shard_names:
        files[name] = root_path / name
    return SyntheticModel(root=root_path, files=dict(sorted(files.items())), shards=shard_names)


def add_synthetic_model(
    hub: FakeHub,
    repo_id: str,
    root: str | os.PathLike[str],
    *,
    shard_sizes: Sequence[int] = (1 << 20, 1 << 20),
    repo_kwargs: Mapping[str, Any] | None = None,
    **model_kwargs: Any,
) -> tuple[str, SyntheticModel]:
    """Write a synthetic model under ``root`` and publish it on ``hub`` as ``repo_id``.

    Returns ``(commit_sha, model)``; ``repo_kwargs`` go to :meth:`FakeHub.add_repo`, the rest to
    :func:`write_synthetic_model`.
    """
    model = write_synthetic_model(root, shard_sizes=shard_sizes, **model_kwargs)
    sha = hub.add_repo(repo_id, model.repo_files(), **dict(repo_kwargs or {}))
    return sha, model
