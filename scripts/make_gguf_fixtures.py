#!/usr/bin/env python3
"""Write the GGUF fixtures under tests/fixtures/gguf/ with the `gguf` package, and HF transformers' readings of them.

tests/fixtures/gguf/quants.gguf, quants.safetensors
    One tensor per type the engine reads (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), [3, 512]:
    `<type>.quantized` is seeded normal data (rows of different scales) put through `gguf.quants.quantize` where
    the package can quantize that type; `<type>.random` is random block bytes with finite f16 scales (every bit
    pattern of the packed values). quants.safetensors holds what `gguf.quants.dequantize` makes of each (float32).
    The file's alignment is 64 and its metadata holds one value of every GGUF value type and arrays of them
    (listed in quants.json with the values as Python reads them).

tests/fixtures/gguf/llama.gguf, llama.json, llama.safetensors
    tests/fixtures/llm-tiny-llama as llama.cpp's converter writes it: Q/K rows permuted for ggml's rope, llama.cpp
    tensor names, weights in Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16 and BF16 (norms F32), the byte-level BPE vocabulary
    and merges (tokenizer.ggml.model = gpt2, pre = llama-bpe), token types, the chat template. The rope scaling of
    the fixture is not written (transformers ignores llama.cpp's rope_freqs tensor); nor is it when reading.
    llama.safetensors: the HF-named weights transformers loads from llama.gguf (dequantized, un-permuted), the
    last-position logits of the prompts; llama.json: prompts and their ids through the tokenizer transformers builds
    from the file, 16 greedy tokens each, a chat rendering, the config transformers builds.

tests/fixtures/gguf/gemma3.gguf, gemma3.json, gemma3.safetensors
    A random Gemma3ForCausalLM (6 blocks, the sixth global, a sliding window of 4, width 64, 2 heads and 1 KV head of
    32, vocabulary of 330 SentencePiece pieces with byte fallback) as llama.cpp writes it: norm weights plus 1,
    mixed quantized types, tokenizer.ggml.model = llama with scores and token types, blank tokens spelled with
    spaces. gemma3.safetensors: the HF-named weights transformers loads (norms minus 1), last-position logits,
    block-L means, the steering vector and steered logits; gemma3.json: token ids of hard strings, prompts, greedy
    tokens, the config.

Run from the repository root:  python3 scripts/make_gguf_fixtures.py
Requires: gguf, numpy, torch, transformers (5.x), accelerate, safetensors.
"""

from __future__ import annotations

import json
import os
import tempfile

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save_file as save_np
from safetensors.torch import save_file as save_torch

from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
LLAMA = os.path.join(ROOT, "tests", "fixtures", "llm-tiny-llama")
QUANT_TYPES = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]
FLOAT_TYPES = [Q.F32, Q.F16, Q.BF16]
# Byte offsets of the f16 scales in each block type (d, and dmin where there is one).
SCALE_OFFSETS = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0], Q.Q4_K: [0, 2],
                 Q.Q5_K: [0, 2], Q.Q6_K: [208]}
GREEDY_TOKENS = 16


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_blocks(qtype: Q, rows: int, cols: int, seed: int) -> np.ndarray:
    """Random bytes in the layout of `qtype`, with finite f16 scales of a sane size."""
    values, size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rows * cols // values
    r = rng(seed)
    raw = r.integers(0, 256, size=(blocks, size), dtype=np.uint8)
    for offset in SCALE_OFFSETS[qtype]:
        scales = (r.uniform(0.001, 0.05, size=blocks) * r.choice([-1, 1], size=blocks)).astype(np.float16)
        raw[:, offset:offset + 2] = scales.view(np.uint8).reshape(blocks, 2)
    return raw.reshape(rows, cols // values * size)


def write_quants() -> None:
    writer = gguf.GGUFWriter(os.path.join(OUT, "quants.gguf"), "quants")
    writer.data_alignment = 64
    writer.add_uint32("general.alignment", 64)
    metadata = {
        "test.u8": (writer.add_uint8, 200), "test.i8": (writer.add_int8, -100),
        "test.u16": (writer.add_uint16, 60000), "test.i16": (writer.add_int16, -30000),
        "test.u32": (writer.add_uint32, 4000000000), "test.i32": (writer.add_int32, -2000000000),
        "test.u64": (writer.add_uint64, 2**63 + 5), "test.i64": (writer.add_int64, -2**62),
        "test.f32": (writer.add_float32, 0.1), "test.f64": (writer.add_float64, 0.1),
        "test.bool": (writer.add_bool, True), "test.string": (writer.add_string, "héllo ✓"),
        "test.ints": (writer.add_array, [1, -2, 3]), "test.strings": (writer.add_array, ["a", "", "ü"]),
        "test.floats": (writer.add_array, [0.5, -1.25]),
    }
    for key, (add, value) in metadata.items():
        add(key, value)
    expected = {}
    data = rng(0).standard_normal((3, 512)).astype(np.float32) * np.array([[0.02], [1.0], [30.0]], np.float32)
    for qtype in FLOAT_TYPES + QUANT_TYPES:
        cases = []
        try:
            cases.append(("quantized", gguf.quants.quantize(data, qtype)))
        except NotImplementedError:
            pass
        if qtype in QUANT_TYPES:
            cases.append(("random", random_blocks(qtype, 3, 512, seed=int(qtype))))
        for case, raw in cases:
            name = f"{qtype.name}.{case}"
            if qtype == Q.F32:
                writer.add_tensor(name, raw)
            elif qtype == Q.F16:
                writer.add_tensor(name, raw.astype(np.float16))
            else:
                writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
            expected[name] = gguf.quants.dequantize(raw.view(np.uint8) if qtype != Q.F32 else raw, qtype).astype(np.float32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    save_np(expected, os.path.join(OUT, "quants.safetensors"))
    reader = gguf.GGUFReader(os.path.join(OUT, "quants.gguf"))
    values = {key: reader.fields[key].contents() for key in metadata}
    with open(os.path.join(OUT, "quants.json"), "w") as f:
        json.dump({"metadata": values, "alignment": 64, "tensors": sorted(expected)}, f, indent=1, ensure_ascii=False)
        f.write("\n")


def llama_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's Q/K row order: each head's rotary halves interleaved."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def add_weight(writer: gguf.GGUFWriter, name: str, w: np.ndarray, qtype: Q) -> None:
    w = np.ascontiguousarray(w, dtype=np.float32)
    if qtype == Q.F32:
        writer.add_tensor(name, w)
    elif qtype == Q.F16:
        writer.add_tensor(name, w.astype(np.float16))
    else:
        raw = gguf.quants.quantize(w, qtype)
        writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)


def pick_type(name: str, w: np.ndarray, index: int, cycle: list[Q]) -> Q:
    """Norms and 1-D tensors stay F32; matrices take the types of `cycle` in turn (F16 where a row is not whole
    32-value blocks)."""
    if w.ndim == 1 or "norm" in name:
        return Q.F32
    if w.shape[-1] % 32 != 0:
        return Q.F16
    return cycle[index % len(cycle)]


LLAMA_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
}


def gguf_name(hf: str, arch: str) -> str:
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    layer, module, suffix = parts[2], ".".join(parts[3:-1]), parts[-1]
    names = dict(LLAMA_NAMES)
    if arch == "llama":
        names["post_attention_layernorm"] = "ffn_norm"
    else:
        names.update({"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                      "post_feedforward_layernorm": "post_ffw_norm", "self_attn.q_norm": "attn_q_norm",
                      "self_attn.k_norm": "attn_k_norm"})
    return f"blk.{layer}.{names[module]}.{suffix}"


def hf_greedy(model, ids: list[int], n: int) -> list[int]:
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=n, min_new_tokens=n, eos_token_id=None,
                              pad_token_id=0, bos_token_id=None, use_cache=True)
    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        with torch.no_grad():
            out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 generation_config=config)
    finally:
        model.generation_config = saved
    return out[0, len(ids):].tolist()


def last_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()


def hf_read(path: str):
    directory, name = os.path.split(path)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    return tokenizer, model


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def token_cases(tokenizer, texts: list[str]) -> list[dict]:
    cases = []
    for text in texts:
        ids = tokenizer.backend_tokenizer.encode(text).ids
        assert tokenizer(text)["input_ids"] == ids, (text, tokenizer(text)["input_ids"], ids)
        cases.append({"text": text, "ids": ids})
    return cases


def write_llama() -> None:
    config = json.load(open(os.path.join(LLAMA, "config.json")))
    tok = json.load(open(os.path.join(LLAMA, "tokenizer.json")))
    tok_config = json.load(open(os.path.join(LLAMA, "tokenizer_config.json")))
    weights = {}
    for file in sorted(os.listdir(LLAMA)):
        if file.endswith(".safetensors") and file.startswith("model"):
            weights.update(load_np(os.path.join(LLAMA, file)))
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    path = os.path.join(OUT, "llama.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_rope_freq_base(config["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    vocab = {**tok["model"]["vocab"], **{t["content"]: t["id"] for t in tok["added_tokens"]}}
    tokens = [None] * config["vocab_size"]
    for token, index in vocab.items():
        tokens[index] = token
    special = {t["id"] for t in tok["added_tokens"] if t["special"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
    writer.add_token_merges([" ".join(m) for m in tok["model"]["merges"]])
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"][0])
    writer.add_eot_token_id(config["eos_token_id"][1])
    writer.add_add_bos_token(True)
    writer.add_chat_template(tok_config["chat_template"])
    cycle = [Q.Q8_0, Q.Q4_0, Q.Q5_1, Q.Q4_1, Q.Q5_0, Q.BF16, Q.F16]
    for index, (name, w) in enumerate(sorted(weights.items())):
        if name.endswith("q_proj.weight"):
            w = llama_permute(w, heads)
        elif name.endswith("k_proj.weight"):
            w = llama_permute(w, kv_heads)
        add_weight(writer, gguf_name(name, "llama"), w, pick_type(name, w, index, cycle))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    tokenizer, model = hf_read(path)
    prompts = ["Hello world", "The quick brown fox jumps over the lazy dog", "a photo of a <category>."]
    cases = token_cases(tokenizer, prompts + ["  spaces\tand\nnew lines 123 ü 🤖", "<|begin_of_text|>x<|eot_id|>"])
    prompt_ids = [c["ids"] for c in cases[:len(prompts)]]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    golden = {
        "hf_config": jsonable(model.config.to_dict()),
        "tokenizer": cases,
        "prompts": prompts,
        "prompt_ids": prompt_ids,
        "greedy": [hf_greedy(model, ids, GREEDY_TOKENS) for ids in prompt_ids],
        "chat": {"messages": messages, "rendered": rendered,
                 "ids": tokenizer.backend_tokenizer.encode(rendered, add_special_tokens=False).ids},
    }
    tensors = {k: v.float().contiguous() for k, v in model.state_dict().items()}
    tensors["last_logits"] = torch.stack([last_logits(model, ids) for ids in prompt_ids])
    save_torch(tensors, os.path.join(OUT, "llama.safetensors"))
    with open(os.path.join(OUT, "llama.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


GEMMA_WORDS = ["the", "a", "photo", "of", "cat", "dog", "on", "in", "and", "is", "to", "image", "small", "big",
               "red", "blue", "green", "bird", "car", "tree", "sky", "water", "house", "man", "woman", "with"]
GEMMA_TEXTS = ["a photo of a cat", "the dog is on the big red car", "  two  spaces\tand a tab\nnew line",
               "unknown: ü 🤖 zzz", "<start_of_turn>user\nhi<end_of_turn>", "small   big    blue"]


def gemma_vocab() -> tuple[list[str], list[float], list[int]]:
    """A small SentencePiece vocabulary in Gemma's layout: specials, control tokens, byte tokens, blanks spelled
    with spaces, single characters, then word pieces with their leading `▁`."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    types = [3, 3, 3, 3, 3, 3, 3]
    tokens += ["\n", "\t", "  ", "   ", "    "]
    types += [4, 4, 4, 4, 4]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    chars = sorted(set("".join(GEMMA_WORDS) + "abcdefghijklmnopqrstuvwxyz:<>_")) + ["\u2581"]
    tokens += chars
    types += [1] * len(chars)
    pieces = []
    for word in GEMMA_WORDS:
        for end in range(2, len(word) + 1):
            pieces.append(word[:end])
        pieces.append("\u2581" + word)
    pieces += ["\u2581\u2581", "\u2581t", "\u2581th", "\u2581a\u2581"]
    for piece in pieces:
        if piece not in tokens:
            tokens.append(piece)
            types.append(1)
    scores = [float(-i) if t == 1 else 0.0 for i, t in enumerate(types)]
    # Scores that disagree with the order in the file: Gemma's merges follow the order, not the scores.
    scores = [s if i % 3 else -s for i, s in enumerate(scores)]
    return tokens, scores, types


def write_gemma3() -> None:
    tokens, scores, types = gemma_vocab()
    torch.manual_seed(3)
    config = Gemma3TextConfig(vocab_size=len(tokens), hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=4,
                              max_position_embeddings=256, rms_norm_eps=1e-6, pad_token_id=0, eos_token_id=1,
                              bos_token_id=2, query_pre_attn_scalar=32, rope_theta=1e6, tie_word_embeddings=True)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 0.3 if "norm" in name else (0.5 if "embed" in name else 0.08)
            p.copy_(torch.randn(p.shape) * std)
    weights = {k: v.numpy() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    path = os.path.join(OUT, "gemma3.gguf")
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_name("tiny gemma3")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_freq_base(1e6)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_sliding_window(config.sliding_window)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    cycle = [Q.Q8_0, Q.Q5_0, Q.Q4_0, Q.Q5_1, Q.Q4_1, Q.BF16, Q.F16]
    for index, (name, w) in enumerate(sorted(weights.items())):
        if name.endswith("norm.weight"):
            w = w + 1
        add_weight(writer, gguf_name(name, "gemma3"), w, pick_type(name, w, index, cycle))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    tokenizer, model = hf_read(path)
    assert model.config.query_pre_attn_scalar == 256, "transformers' default, as for the real files"
    cases = token_cases(tokenizer, GEMMA_TEXTS)
    prompts = ["a photo of a cat", "the dog is on the big red car with a small green bird in the tree"]
    prompt_ids = [tokenizer.backend_tokenizer.encode(p).ids for p in prompts]
    layer = 2
    means = []
    for ids in prompt_ids:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
        means.append(out.hidden_states[layer + 1][0].mean(dim=0))
    steer = torch.randn(config.hidden_size, generator=torch.Generator().manual_seed(5)) * 4.0

    def add_last(module, args, output):
        hs = (output[0] if isinstance(output, tuple) else output).clone()
        hs[:, -1, :] += steer
        return (hs,) + tuple(output[1:]) if isinstance(output, tuple) else hs

    handle = model.model.layers[layer].register_forward_hook(add_last)
    steered = torch.stack([last_logits(model, ids) for ids in prompt_ids])
    handle.remove()
    golden = {
        "hf_config": jsonable(model.config.to_dict()),
        "tokenizer": cases,
        "prompts": prompts,
        "prompt_ids": prompt_ids,
        "greedy": [hf_greedy(model, ids, GREEDY_TOKENS) for ids in prompt_ids],
        "layer": layer,
    }
    tensors = {k: v.float().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    tensors["last_logits"] = torch.stack([last_logits(model, ids) for ids in prompt_ids])
    tensors["hidden_mean"] = torch.stack(means)
    tensors["steer"] = steer
    tensors["steered_last_logits"] = steered
    save_torch(tensors, os.path.join(OUT, "gemma3.safetensors"))
    with open(os.path.join(OUT, "gemma3.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    write_quants()
    write_llama()
    write_gemma3()
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


if __name__ == "__main__":
    main()
