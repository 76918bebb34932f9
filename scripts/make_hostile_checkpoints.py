#!/usr/bin/env python3
"""Write hostile checkpoints under tests/fixtures/hostile/checkpoints/ for tests/hostile_checkpoints.rs.

Each is a small GGUF file or model directory, written byte by byte with `struct`, that is wrong in one way a file
from a stranger may be: sizes whose products overflow, config values at odds with the tensors present or far past
any real model, metadata arrays nested deep or claiming more items than the file holds, shard names that leave the
model directory. Every one must be refused with an error naming the file and the field or tensor, in seconds and
bounded memory.

GGUF files (a tiny Llama of width 8, 2 heads, MLP 16, vocabulary 16, 2 blocks, unless said otherwise):
    huge-elements.gguf          tensor `huge`: F32 of 2^31 x 2^31 values (2^64 bytes, which wraps to 0), 32 bytes
    huge-dimensions.gguf        tensor `huge`: F32 of 2^32 x 2^32 values (more than an int64 counts)
    zero-heads.gguf             llama.attention.head_count = 0
    heads-not-dividing.gguf     3 heads of a width of 8: head size 2, while blk.N.attn_q.weight is 8 x 8
    kv-heads-not-dividing.gguf  2 heads sharing 3 key/value heads
    block-count-mismatch.gguf   llama.block_count = 3, tensors of blocks 0 and 1 only
    absurd-layers.gguf          llama.block_count = 10^12
    gemma3-absurd-layers.gguf   a Gemma 3 file with gemma3.block_count = 10^12 (its layer kinds are one per block)
    absurd-width.gguf           llama.embedding_length = 2^40
    nested-arrays.gguf          metadata test.nested: arrays nested 6 deep
    huge-array-count.gguf       metadata test.huge: a uint32 array claiming 2^62 items
    huge-string-count.gguf      metadata test.strings: a string array claiming 2^60 items

Model directories (config.json and model.safetensors; a Llama of the same tiny shape):
    config-zero-heads/          num_attention_heads = 0
    config-heads-not-dividing/  3 heads of a width of 8
    config-layers-mismatch/     num_hidden_layers = 3, tensors of layers 0 and 1 only
    config-absurd-layers/       a Gemma 3 config with num_hidden_layers = 10^12
    config-absurd-vocab/        vocab_size = 2^40
    clip-layers-mismatch/       a CLIP whose text_config.num_hidden_layers is 2, with tensors of one layer
    clip-absurd-image/          a CLIP whose vision_config.image_size is 2^40
    safetensors-zero-dim/       tensor `w` of shape [0, 2^40, 2^40]: no bytes, but its dimensions overflow
    shard-parent/               model.safetensors.index.json names ../outside.safetensors (which exists)
    shard-absolute/             model.safetensors.index.json names /etc/passwd

Run from the repository root:  python3 scripts/make_hostile_checkpoints.py  (Python 3.11 standard library only)
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

OUT = Path("tests/fixtures/hostile/checkpoints")

# GGUF value types.
U32, F32, STRING, ARRAY, U64 = 4, 6, 8, 9, 10
# GGUF tensor type of float32.
GGML_F32 = 0
ALIGNMENT = 32


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf_value(kind: int, value) -> bytes:
    if kind == U32:
        return struct.pack("<I", value)
    if kind == F32:
        return struct.pack("<f", value)
    if kind == STRING:
        return gguf_string(value)
    if kind == U64:
        return struct.pack("<Q", value)
    raise ValueError(f"value type {kind}")


def gguf_file(metadata: list[tuple[str, int, object]], tensors: list[tuple[str, list[int]]], raw=b"") -> bytes:
    """A GGUF v3 file: `metadata` as (key, type, value), then `raw` metadata bytes counted as one more entry when
    given, and F32 `tensors` as (name, ggml dimensions), each filled with zeros (or given 32 bytes when its
    dimensions claim more)."""
    entries = len(metadata) + (1 if raw else 0)
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), entries))
    for key, kind, value in metadata:
        out += gguf_string(key) + struct.pack("<I", kind) + gguf_value(kind, value)
    out += raw
    offset = 0
    sizes = []
    for name, dims in tensors:
        count = 1
        for d in dims:
            count *= d
        size = 4 * count if count < 1 << 20 else 32
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", GGML_F32, offset)
        sizes.append(size)
        offset += -(-size // ALIGNMENT) * ALIGNMENT
    out += bytes(-len(out) % ALIGNMENT)
    for size in sizes:
        out += bytes(size) + bytes(-size % ALIGNMENT)
    return bytes(out)


def llama_gguf(arch="llama", changes: dict | None = None) -> bytes:
    """A tiny decoder of `arch` (width 8, 2 heads of 4, MLP 16, vocabulary 16, 2 blocks) with its metadata changed
    by `changes` (key without the architecture: (type, value))."""
    hidden, heads, head_dim, ffn, vocab = 8, 2, 4, 16, 16
    metadata = {
        "embedding_length": (U64, hidden),
        "attention.head_count": (U32, heads),
        "block_count": (U64, 2),
        "feed_forward_length": (U32, ffn),
        "attention.layer_norm_rms_epsilon": (F32, 1e-5),
        "vocab_size": (U32, vocab),
    }
    if arch == "gemma3":
        metadata["attention.key_length"] = (U32, head_dim)
    metadata.update(changes or {})
    entries = [("general.architecture", STRING, arch)]
    entries += [(f"{arch}.{key}", kind, value) for key, (kind, value) in metadata.items()]
    tensors = [("token_embd.weight", [hidden, vocab]), ("output_norm.weight", [hidden])]
    for i in range(2):
        tensors += [
            (f"blk.{i}.attn_norm.weight", [hidden]),
            (f"blk.{i}.attn_q.weight", [hidden, heads * head_dim]),
            (f"blk.{i}.attn_k.weight", [hidden, heads * head_dim]),
            (f"blk.{i}.attn_v.weight", [hidden, heads * head_dim]),
            (f"blk.{i}.attn_output.weight", [heads * head_dim, hidden]),
            (f"blk.{i}.ffn_norm.weight", [hidden]),
            (f"blk.{i}.ffn_gate.weight", [hidden, ffn]),
            (f"blk.{i}.ffn_up.weight", [hidden, ffn]),
            (f"blk.{i}.ffn_down.weight", [ffn, hidden]),
        ]
    return gguf_file(entries, tensors)


LLAMA = [("general.architecture", STRING, "llama")]


def raw_entry(key: str, kind: int, value: bytes) -> bytes:
    """A metadata entry whose value bytes are given as they are, whatever they claim."""
    return gguf_string(key) + struct.pack("<I", kind) + value


def nested_array(depth: int) -> bytes:
    """An array value `depth` levels deep whose innermost array holds one uint32."""
    inner = struct.pack("<IQI", U32, 1, 7)
    for _ in range(depth - 1):
        inner = struct.pack("<IQ", ARRAY, 1) + inner
    return inner


def safetensors_file(tensors: list[tuple[str, list[int]]]) -> bytes:
    """A safetensors file of F32 zeros; a tensor whose shape has a 0 holds no bytes."""
    header, data = {}, bytearray()
    for name, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * count]}
        data += bytes(4 * count)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data)


def llama_weights(layers: int, hidden=8, heads_dim=8, ffn=16, vocab=16) -> list[tuple[str, list[int]]]:
    tensors = [("model.embed_tokens.weight", [vocab, hidden]), ("model.norm.weight", [hidden])]
    for i in range(layers):
        p = f"model.layers.{i}"
        tensors += [
            (f"{p}.input_layernorm.weight", [hidden]),
            (f"{p}.self_attn.q_proj.weight", [heads_dim, hidden]),
            (f"{p}.self_attn.k_proj.weight", [heads_dim, hidden]),
            (f"{p}.self_attn.v_proj.weight", [heads_dim, hidden]),
            (f"{p}.self_attn.o_proj.weight", [hidden, heads_dim]),
            (f"{p}.post_attention_layernorm.weight", [hidden]),
            (f"{p}.mlp.gate_proj.weight", [ffn, hidden]),
            (f"{p}.mlp.up_proj.weight", [ffn, hidden]),
            (f"{p}.mlp.down_proj.weight", [hidden, ffn]),
        ]
    return tensors


def llama_config(**changes) -> dict:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "vocab_size": 16,
        "rms_norm_eps": 1e-5,
    }
    config.update(changes)
    return config


def clip_config(text_layers=1, image_size=4) -> dict:
    tower = {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1}
    return {
        "model_type": "clip",
        "projection_dim": 8,
        "text_config": {**tower, "num_hidden_layers": text_layers, "vocab_size": 16, "max_position_embeddings": 8},
        "vision_config": {**tower, "image_size": image_size, "patch_size": 2},
    }


def clip_weights() -> list[tuple[str, list[int]]]:
    return [
        ("text_model.encoder.layers.0.mlp.fc1.weight", [16, 8]),
        ("vision_model.encoder.layers.0.mlp.fc1.weight", [16, 8]),
    ]


def model_dir(name: str, config: dict, tensors: list[tuple[str, list[int]]]) -> None:
    folder = OUT / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    (folder / "model.safetensors").write_bytes(safetensors_file(tensors))


def sharded_dir(name: str, shard: str) -> None:
    folder = OUT / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(llama_config(), indent=1) + "\n")
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": shard}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1) + "\n")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    files = {
        "huge-elements.gguf": gguf_file(LLAMA, [("huge", [1 << 31, 1 << 31])]),
        "huge-dimensions.gguf": gguf_file(LLAMA, [("huge", [1 << 32, 1 << 32])]),
        "zero-heads.gguf": llama_gguf(changes={"attention.head_count": (U32, 0)}),
        "heads-not-dividing.gguf": llama_gguf(changes={"attention.head_count": (U32, 3)}),
        "kv-heads-not-dividing.gguf": llama_gguf(changes={"attention.head_count_kv": (U32, 3)}),
        "block-count-mismatch.gguf": llama_gguf(changes={"block_count": (U64, 3)}),
        "absurd-layers.gguf": llama_gguf(changes={"block_count": (U64, 10**12)}),
        "gemma3-absurd-layers.gguf": llama_gguf("gemma3", {"block_count": (U64, 10**12)}),
        "absurd-width.gguf": llama_gguf(changes={"embedding_length": (U64, 1 << 40)}),
        "nested-arrays.gguf": gguf_file(LLAMA, [], raw_entry("test.nested", ARRAY, nested_array(6))),
        "huge-array-count.gguf": gguf_file(LLAMA, [], raw_entry("test.huge", ARRAY, struct.pack("<IQ", U32, 1 << 62))),
        "huge-string-count.gguf": gguf_file(
            LLAMA, [], raw_entry("test.strings", ARRAY, struct.pack("<IQ", STRING, 1 << 60) + gguf_string("a") * 4)
        ),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    weights = llama_weights(2)
    model_dir("config-zero-heads", llama_config(num_attention_heads=0), weights)
    model_dir("config-heads-not-dividing", llama_config(num_attention_heads=3, num_key_value_heads=3), weights)
    model_dir("config-layers-mismatch", llama_config(num_hidden_layers=3), weights)
    gemma3 = llama_config(architectures=["Gemma3ForCausalLM"], num_hidden_layers=10**12, head_dim=4)
    model_dir("config-absurd-layers", gemma3, weights)
    model_dir("config-absurd-vocab", llama_config(vocab_size=1 << 40), weights)
    model_dir("clip-layers-mismatch", clip_config(text_layers=2), clip_weights())
    model_dir("clip-absurd-image", clip_config(image_size=1 << 40), clip_weights())
    model_dir("safetensors-zero-dim", llama_config(), [("w", [0, 1 << 40, 1 << 40])])
    (OUT / "outside.safetensors").write_bytes(safetensors_file([("model.embed_tokens.weight", [16, 8])]))
    sharded_dir("shard-parent", "../outside.safetensors")
    sharded_dir("shard-absolute", "/etc/passwd")
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
