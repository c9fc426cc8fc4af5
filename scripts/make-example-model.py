#!/usr/bin/env python3
"""Write the bundled example model: a tiny Llama-architecture decoder with random weights.

Output (default python/modelagent/examples/tiny-llama/): config.json and model.safetensors, written
byte-for-byte reproducibly (fixed seed, no dependency beyond the standard library), so re-running
the script reproduces the committed files exactly. The weights are noise: the model exists to be
inspected (`model-agent inspect` with no PATH), not to generate text.

Shape: vocab 1024, hidden 64, 4 layers, 4 attention heads of 16 with 2 KV heads, MLP 128, tied
embeddings, bfloat16: 213,568 parameters, about 430 KB.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "python" / "modelagent" / "examples" / "tiny-llama"
SEED = 20240601
VOCAB, HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 1024, 64, 128, 4, 4, 2, 16
INIT_STD = 0.02

CONFIG: dict[str, object] = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": HEAD_DIM,
    "hidden_act": "silu",
    "hidden_size": HIDDEN,
    "initializer_range": INIT_STD,
    "intermediate_size": INTERMEDIATE,
    "max_position_embeddings": 2048,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": HEADS,
    "num_hidden_layers": LAYERS,
    "num_key_value_heads": KV_HEADS,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.44.0",
    "use_cache": True,
    "vocab_size": VOCAB,
}


def tensor_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor, in the order their data is laid out."""
    hidden, inter, vocab, kv = HIDDEN, INTERMEDIATE, VOCAB, KV_HEADS * HEAD_DIM
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "self_attn.q_proj.weight", (hidden, hidden)),
            (p + "self_attn.k_proj.weight", (kv, hidden)),
            (p + "self_attn.v_proj.weight", (kv, hidden)),
            (p + "self_attn.o_proj.weight", (hidden, hidden)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "mlp.gate_proj.weight", (inter, hidden)),
            (p + "mlp.up_proj.weight", (inter, hidden)),
            (p + "mlp.down_proj.weight", (hidden, inter)),
        ]
    shapes.append(("model.norm.weight", (hidden,)))
    return shapes


def bfloat16_bytes(values: list[float]) -> bytes:
    """Little-endian bfloat16, rounding float32 to nearest even."""
    out = bytearray()
    for value in values:
        bits = struct.unpack("<I", struct.pack("<f", value))[0]
        bits += 0x7FFF + ((bits >> 16) & 1)
        out += struct.pack("<H", (bits >> 16) & 0xFFFF)
    return bytes(out)


def safetensors_bytes(seed: int) -> bytes:
    rng = random.Random(seed)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    data = bytearray()
    for name, shape in tensor_shapes():
        count = 1
        for dim in shape:
            count *= dim
        # RMSNorm weights start at one; everything else is N(0, initializer_range).
        values = [1.0] * count if name.endswith("norm.weight") else [rng.gauss(0.0, INIT_STD) for _ in range(count)]
        begin = len(data)
        data += bfloat16_bytes(values)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [begin, len(data)]}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data section starts 8-byte aligned
    return struct.pack("<Q", len(encoded)) + encoded + bytes(data)


def write_example(output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    (output / "model.safetensors").write_bytes(safetensors_bytes(SEED))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"directory (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args()
    write_example(args.output)
    print(f"wrote {args.output / 'config.json'} and {args.output / 'model.safetensors'}")


if __name__ == "__main__":
    main()
