#!/usr/bin/env python3
"""HF transformers' LlamaForCausalLM / Qwen2ForCausalLM on the same random shapes as `glov-cuda bench llm`, for a
side-by-side comparison of prefill and decode tokens/s.

Builds the model from a config (random weights, no files; llama3 rope scaling for the llama3 shapes), in bf16
with SDPA attention, made directly on the device so that an 8B model initialises in seconds, and measures:
  prefill: tokens/s of one forward pass of a --prompt-tokens random prompt (batch 1, new cache, logits of the last
           position only, as generate's first step computes them);
  decode:  at each --batch n, generate() on the prompt repeated n times (HF has no shared prefix: the prefill runs
           n times), do_sample with GLOV's settings (temperature 1, top-k 50, top-p 0.9), a static cache
           (cache_implementation="static"), min_new_tokens = max_new_tokens = --new-tokens so every sequence runs
           the full length. Decode seconds = time(generate, N new tokens) - time(generate, 1 new token): the N - 1
           steps after the prefill, which make n x (N - 1) tokens. (glov-cuda's bench times its N decode steps the
           same way, against a prefill-only run; both rates are n tokens per decode step.)
Each time is the median of --repeat runs, after an untimed run at each batch.
Prints one JSON object like `glov-cuda bench llm`.

  python3 scripts/bench_hf_llm.py --shape llama3-8b --batch 1 10 40 64
  python3 scripts/bench_hf_llm.py --device cpu --shape small-100m --layers 1 --vocab 512 --prompt-tokens 16 \\
      --new-tokens 4 --batch 1 3          # a quick check without a GPU
"""
import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}

# The shapes of glov-cuda's `shape_config` (src/models/llm/random.rs), field for field.
SHAPES = {
    "llama3-8b": dict(kind="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                      max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0, rope=LLAMA3_ROPE,
                      tie_word_embeddings=False),
    "llama3-1b": dict(kind="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                      max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0, rope=LLAMA3_ROPE,
                      tie_word_embeddings=True),
    "qwen2-7b": dict(kind="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                     max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, rope=None,
                     tie_word_embeddings=False),
    "small-100m": dict(kind="llama", hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                       num_attention_heads=12, num_key_value_heads=4, vocab_size=32000,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=500000.0, rope=None,
                       tie_word_embeddings=True),
}

SAMPLING = dict(do_sample=True, temperature=1.0, top_k=50, top_p=0.9)


def config(shape, layers=None, vocab=None):
    s = dict(SHAPES[shape])
    kind, rope, theta = s.pop("kind"), s.pop("rope"), s.pop("rope_theta")
    if layers:
        s["num_hidden_layers"] = layers
    if vocab:
        s["vocab_size"] = vocab
    # Token ids inside any vocabulary, so a cut one keeps them valid; the EOS id matters only to min_new_tokens.
    s.update(bos_token_id=0, eos_token_id=1, pad_token_id=1)
    if int(transformers.__version__.split(".")[0]) >= 5:
        s["rope_parameters"] = {**(rope or {"rope_type": "default"}), "rope_theta": theta}
    else:
        s["rope_theta"] = theta
        s["rope_scaling"] = rope
    if kind == "llama":
        return LlamaConfig(**s), LlamaForCausalLM
    return Qwen2Config(**s, use_sliding_window=False), Qwen2ForCausalLM


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def seconds_of(device, fn):
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def median_seconds(device, repeat, fn):
    runs = [seconds_of(device, fn) for _ in range(max(1, repeat))]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="llama3-8b", choices=sorted(SHAPES))
    p.add_argument("--layers", type=int, default=None, help="keep only the first N blocks (a quick check)")
    p.add_argument("--vocab", type=int, default=None, help="a vocabulary of N tokens (a quick check)")
    p.add_argument("--prompt-tokens", type=int, default=1000)
    p.add_argument("--new-tokens", type=int, default=50)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 10, 40, 64])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.new_tokens < 2:
        p.error("--new-tokens must be at least 2 (decode is timed as N new tokens less 1)")

    torch.manual_seed(a.seed)
    dtype = torch.bfloat16
    cfg, cls = config(a.shape, a.layers, a.vocab)
    start = time.perf_counter()
    # Made on the device in bf16: the random initialisation runs there, in seconds even for 8B parameters.
    with torch.device(a.device):
        model = cls._from_config(cfg, attn_implementation="sdpa", dtype=dtype)
    model = model.eval()
    synchronize(a.device)
    init_seconds = time.perf_counter() - start
    params = sum(t.numel() for t in model.parameters())

    out = {"bench": "hf_llm", "shape": a.shape, "device": a.device,
           "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
           "torch": torch.__version__, "transformers": transformers.__version__,
           "attention": "sdpa", "dtype": "bf16", "cache": "static",
           "config": {"layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size, "vocab": cfg.vocab_size,
                      "heads": cfg.num_attention_heads, "kv_heads": cfg.num_key_value_heads,
                      "tied_embeddings": cfg.tie_word_embeddings, "parameters": params},
           "sampling": {k: v for k, v in SAMPLING.items() if k != "do_sample"},
           "repeat": a.repeat, "init_seconds": init_seconds, "decode": []}

    prompt = torch.randint(2, cfg.vocab_size, (1, a.prompt_tokens), device=a.device)
    with torch.inference_mode():
        def prefill():
            return model(input_ids=prompt, use_cache=True, logits_to_keep=1).logits

        prefill()  # warm-up
        seconds, _ = median_seconds(a.device, a.repeat, prefill)
        out["prefill"] = {"tokens": a.prompt_tokens, "seconds": seconds, "tokens_per_s": a.prompt_tokens / seconds}

        for batch in a.batch:
            ids = prompt.repeat(batch, 1)
            mask = torch.ones_like(ids)

            def generate(n):
                return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                      cache_implementation="static", pad_token_id=cfg.pad_token_id, **SAMPLING)

            # Warm-up. HF sizes each new static cache to the longest length asked for so far, so both timed runs
            # below get caches of the same size (prompt + new tokens).
            generate(a.new_tokens)
            first_seconds, _ = median_seconds(a.device, a.repeat, lambda: generate(1))
            generate_seconds, generated = median_seconds(a.device, a.repeat, lambda: generate(a.new_tokens))
            new = generated.shape[1] - a.prompt_tokens
            assert new == a.new_tokens, f"generate made {new} tokens, not {a.new_tokens}"
            steps = a.new_tokens - 1
            seconds = generate_seconds - first_seconds
            out["decode"].append({
                "batch": batch, "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens,
                "decode_steps": steps, "tokens": batch * steps, "seconds": seconds,
                "tokens_per_s": batch * steps / seconds if seconds > 0 else None,
                "step_seconds": seconds / steps,
                "generate_seconds": generate_seconds, "first_token_seconds": first_seconds,
                "end_to_end_tokens_per_s": batch * a.new_tokens / generate_seconds,
            })
    if a.device == "cuda":
        out["memory"] = {"peak": torch.cuda.max_memory_allocated(), "reserved_peak": torch.cuda.max_memory_reserved()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
