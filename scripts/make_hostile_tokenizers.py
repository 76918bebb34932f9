#!/usr/bin/env python3
"""Write the hostile tokenizer and chat-template fixtures under tests/fixtures/hostile/tokenizers/.

Each is a small fixture of tests/fixtures with one part made hostile; tests/hostile_tokenizers.rs runs the binary
on them under memory and time limits.

spm-nested-runs.gguf
    tests/fixtures/gguf/gemma3.gguf with 1,100 more SentencePiece tokens `a`, `aa`, ..., `a` * 1100 (the embedding
    grown to match, zeros). Every split of every run is a merge, so the merges hold ~4.4e8 bytes for 0.6 MB of
    tokens: the tokenizer must be refused, naming tokenizer.ggml.tokens.
spm-long-token.gguf
    gemma3.gguf with its last token replaced by one of 700,000 bytes: its tokenizer must build in time linear in the
    token's length (checking each of its splits by hashing both parts takes time quadratic in it).
gpt2-merge-too-long.gguf
    tests/fixtures/gguf/llama.gguf with one more entry in tokenizer.ggml.merges: its longest token twice, whose
    result is longer than any token (which panicked inside the tokenizers crate).
gguf-template-loop.gguf
    llama.gguf whose tokenizer.chat_template loops for ever.
merge-too-long.tokenizer.json
    tests/fixtures/llm-tiny-llama/tokenizer.json with one more merge, its longest token twice.
loop.tokenizer_config.json, doubling.tokenizer_config.json
    tests/fixtures/llm-tiny-llama/tokenizer_config.json whose chat_template loops for ever, or doubles a string
    until memory runs out.

Run from the repository root:  python3 scripts/make_hostile_tokenizers.py   (Python 3.11 standard library only)
"""

from __future__ import annotations

import json
import os
import struct

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "hostile", "tokenizers")
GGUF = os.path.join(ROOT, "tests", "fixtures", "gguf")
LLAMA = os.path.join(ROOT, "tests", "fixtures", "llm-tiny-llama")

# GGUF metadata value types (gguf.h).
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
SCALAR = {UINT8: "B", INT8: "b", UINT16: "H", INT16: "h", UINT32: "I", INT32: "i", FLOAT32: "f", BOOL: "?",
          UINT64: "Q", INT64: "q", FLOAT64: "d"}
# Bytes per block and values per block of the ggml types these fixtures resize.
Q8_0 = 8
BLOCK = {Q8_0: (34, 32)}
DEFAULT_ALIGNMENT = 32

ENDLESS_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"
DOUBLING = ("{% set ns = namespace(s=messages[0]['content']) %}{% for i in range(100) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}")


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def scalar(self, fmt: str):
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        n = self.scalar("Q")
        value = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return value

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item_kind = self.scalar("I")
            return (item_kind, [self.value(item_kind) for _ in range(self.scalar("Q"))])
        return self.scalar(SCALAR[kind])


def read_gguf(path: str):
    """(version, [(key, type, value)], [(name, dims, ggml type, data)]); an array value is (item type, items)."""
    data = open(path, "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF", path
    r.pos = 4
    version = r.scalar("I")
    tensor_count, kv_count = r.scalar("Q"), r.scalar("Q")
    kvs = []
    for _ in range(kv_count):
        key = r.string()
        kind = r.scalar("I")
        kvs.append((key, kind, r.value(kind)))
    infos = []
    for _ in range(tensor_count):
        name = r.string()
        dims = [r.scalar("Q") for _ in range(r.scalar("I"))]
        infos.append((name, dims, r.scalar("I"), r.scalar("Q")))
    alignment = next((v for k, _, v in kvs if k == "general.alignment"), DEFAULT_ALIGNMENT)
    start = (r.pos + alignment - 1) // alignment * alignment
    # A tensor's data runs to the next tensor's (padding included, which rewriting keeps).
    ends = sorted(offset for *_, offset in infos)[1:] + [len(data) - start]
    end_of = {offset: end for offset, end in zip(sorted(offset for *_, offset in infos), ends)}
    tensors = [(name, dims, kind, data[start + offset:start + end_of[offset]]) for name, dims, kind, offset in infos]
    return version, kvs, tensors


def encode_value(kind: int, value) -> bytes:
    if kind == STRING:
        raw = value.encode()
        return struct.pack("<Q", len(raw)) + raw
    if kind == ARRAY:
        item_kind, items = value
        return struct.pack("<IQ", item_kind, len(items)) + b"".join(encode_value(item_kind, v) for v in items)
    return struct.pack("<" + SCALAR[kind], value)


def write_gguf(path: str, version: int, kvs, tensors) -> None:
    alignment = next((v for k, _, v in kvs if k == "general.alignment"), DEFAULT_ALIGNMENT)
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)))
    for key, kind, value in kvs:
        out += encode_value(STRING, key) + struct.pack("<I", kind) + encode_value(kind, value)
    blobs = bytearray()
    for name, dims, kind, data in tensors:
        blobs += b"\0" * (-len(blobs) % alignment)
        out += encode_value(STRING, name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, len(blobs))
        blobs += data
    out += b"\0" * (-len(out) % alignment)
    with open(path, "wb") as f:
        f.write(out + blobs)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(out) + len(blobs)} bytes)")


def set_kv(kvs, key: str, kind: int, value):
    """kvs with `key` set to `value` (replaced where present, else appended)."""
    if any(k == key for k, _, _ in kvs):
        return [(k, kind, value) if k == key else (k, t, v) for k, t, v in kvs]
    return kvs + [(key, kind, value)]


def get_kv(kvs, key: str):
    return next(v for k, _, v in kvs if k == key)


def zero_rows(dims, kind: int, rows: int) -> bytes:
    block_bytes, block_values = BLOCK[kind]
    return b"\0" * (dims[0] // block_values * block_bytes * rows)


def nested_runs() -> None:
    version, kvs, tensors = read_gguf(os.path.join(GGUF, "gemma3.gguf"))
    runs = ["a" * n for n in range(1, 1101)]
    tokens = get_kv(kvs, "tokenizer.ggml.tokens")[1] + runs
    kvs = set_kv(kvs, "tokenizer.ggml.tokens", ARRAY, (STRING, tokens))
    scores = get_kv(kvs, "tokenizer.ggml.scores")[1] + [0.0] * len(runs)
    kvs = set_kv(kvs, "tokenizer.ggml.scores", ARRAY, (FLOAT32, scores))
    types = get_kv(kvs, "tokenizer.ggml.token_type")[1] + [1] * len(runs)
    kvs = set_kv(kvs, "tokenizer.ggml.token_type", ARRAY, (INT32, types))
    resized = []
    for name, dims, kind, data in tensors:
        if name == "token_embd.weight":
            dims = [dims[0], len(tokens)]
            data = zero_rows(dims, kind, len(tokens))
        resized.append((name, dims, kind, data))
    write_gguf(os.path.join(OUT, "spm-nested-runs.gguf"), version, kvs, resized)


def long_token() -> None:
    version, kvs, tensors = read_gguf(os.path.join(GGUF, "gemma3.gguf"))
    tokens = get_kv(kvs, "tokenizer.ggml.tokens")[1]
    kvs = set_kv(kvs, "tokenizer.ggml.tokens", ARRAY, (STRING, tokens[:-1] + ["x" * 700_000]))
    write_gguf(os.path.join(OUT, "spm-long-token.gguf"), version, kvs, tensors)


def merge_too_long_gguf() -> None:
    version, kvs, tensors = read_gguf(os.path.join(GGUF, "llama.gguf"))
    longest = max(get_kv(kvs, "tokenizer.ggml.tokens")[1], key=len)
    merges = get_kv(kvs, "tokenizer.ggml.merges")[1]
    kvs = set_kv(kvs, "tokenizer.ggml.merges", ARRAY, (STRING, merges + [f"{longest} {longest}"]))
    write_gguf(os.path.join(OUT, "gpt2-merge-too-long.gguf"), version, kvs, tensors)


def template_loop_gguf() -> None:
    version, kvs, tensors = read_gguf(os.path.join(GGUF, "llama.gguf"))
    kvs = set_kv(kvs, "tokenizer.chat_template", STRING, ENDLESS_LOOP)
    write_gguf(os.path.join(OUT, "gguf-template-loop.gguf"), version, kvs, tensors)


def write_json(name: str, value) -> None:
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}")


def tokenizer_files() -> None:
    with open(os.path.join(LLAMA, "tokenizer.json"), encoding="utf-8") as f:
        tokenizer = json.load(f)
    longest = max(tokenizer["model"]["vocab"], key=len)
    tokenizer["model"]["merges"].append([longest, longest])
    write_json("merge-too-long.tokenizer.json", tokenizer)
    with open(os.path.join(LLAMA, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    for name, template in [("loop", ENDLESS_LOOP), ("doubling", DOUBLING)]:
        write_json(f"{name}.tokenizer_config.json", dict(config, chat_template=template))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    nested_runs()
    long_token()
    merge_too_long_gguf()
    template_loop_gguf()
    tokenizer_files()


if __name__ == "__main__":
    main()
