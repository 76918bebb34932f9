#!/usr/bin/env python3
"""Record HF transformers' outputs for Gemma-3-270M (base, Q4_K_M GGUF) into tests/fixtures/gemma3-270m-gguf/.

The model is the GGUF file `scripts/fetch-gemma3-270m.sh` fetches and verifies. transformers reads that very file
(`from_pretrained(dir, gguf_file=...)`: every tensor dequantized by the `gguf` package, norm weights un-offset,
float32), and so does the engine; these are the references the Rust tests compare against.

golden.json:
    file, sha256                 the GGUF file's name and SHA-256
    hf_config                    the config transformers builds from the file (its `to_dict()`, JSON-safe)
    bos_id, eos_id, vocab_size
    tokenizer                    [{text, ids}]: hard strings encoded with special tokens, through the `tokenizers`
                                 tokenizer transformers builds from the file's metadata; HF's own
                                 `tokenizer(text)` is checked to give the same ids, and decoding them to give
                                 the text back (recorded as `decodes_to_text`)
    prompts, prompt_ids          prompts of the logits and greedy checks
    logits_prompts               indices into prompts of the rows of last_logits
    greedy                       [prompts][32] greedy tokens (no stop tokens), KV cache on
    greedy_text                  their decoded text (for reading)
    greedy_min_margin            [prompts] smallest top1 - top2 logit gap over those steps
    layer                        L, the 0-based block whose output is averaged and steered
    steered_prompt               index into prompts of the steered rows
    steered_greedy               [16] greedy tokens with `steer` added at the last position of block L in every
                                 forward call (the steered KV cache)
    steered_greedy_min_margin
golden.safetensors (float32):
    last_logits          [len(logits_prompts), vocab]  last prompt position
    hidden_mean          [prompts, hidden]  mean over the prompt's tokens of block L's output
    steer                [hidden]  the offset: a seeded random direction with 4x the median norm of a token's
                                   block-L output
    steered_last_logits  [1, vocab]  `steer` added at the last position of block L (steered_prompt)
    steered_all_logits   [1, vocab]  `steer` added at every position of block L (steered_prompt)

Run from the repository root:  python3 scripts/make_gemma3_gguf_fixtures.py [path/to/gemma-3-270m-q4_k_m.gguf]
(without an argument the file is fetched by scripts/fetch-gemma3-270m.sh).
Requires: torch, transformers (5.x), gguf, accelerate, tokenizers, safetensors, numpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import save_file

import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_llm_fixtures import Steer  # noqa: E402  the steering hook the other LLM fixtures use

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "gemma3-270m-gguf")
LAYER = 8
GREEDY_TOKENS = 32
STEERED_TOKENS = 16
STEER_NORM_FACTOR = 4.0

META_PROMPT = (
    "Write one new prompt template that raises CLIP's zero-shot classification accuracy on the dataset below. "
    "Keep the format of the examples, with <category> where the class name goes.\n\n"
    "Dataset: EuroSAT\nDescription: satellite images of land use\n\n"
    "The template so far and its accuracy:\n"
    "a centered satellite photo of <category>.  (accuracy: 41.2%)\n\n"
    "Answer with the new template only, on one line, without numbering, quotes or explanation.\n"
)

TOKENIZER_TEXTS = [
    "A photo of a",
    "Hello world",
    "",
    " ",
    "   leading spaces, and   runs   of spaces   ",
    "tabs\tand\nnew\n\nlines\r\n\tend",
    "digits 1234567890 3.14159 1,000,000 2026-12-01 0x1F",
    "emoji 🤖🎉👍🏽 🇫🇷 and 中文 日本語 한국어 العربية Ελληνικά",
    "Ünïcödé façade naïve coöperate — “quotes” … ½ ∑ ∞",
    "byte fallback: \U0001f9ff \ue000 \U0010fffd \u0378 \x7f",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "a photo of a <category>.",
    META_PROMPT,
]

PROMPTS = [
    "A photo of a",
    "The capital of France is",
    META_PROMPT,
    "Here are some short captions for photos:\n1.",
    "1, 2, 3, 4,",
]
LOGITS_PROMPTS = [0, 2]
STEERED_PROMPT = 0


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def last_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].to(torch.float32)


def greedy(model, ids: list[int], n: int) -> tuple[list[int], float]:
    """HF generate, greedy, no stopping; and the smallest top-2 margin over the steps."""
    config = GenerationConfig(
        do_sample=False, num_beams=1, max_new_tokens=n, min_new_tokens=n, eos_token_id=None, pad_token_id=0,
        bos_token_id=None, use_cache=True, output_scores=True, return_dict_in_generate=True,
    )
    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                generation_config=config,
            )
    finally:
        model.generation_config = saved
    tokens = out.sequences[0, len(ids):].tolist()
    assert len(tokens) == n, (len(tokens), n)
    margin = min(float(torch.topk(s[0].float(), 2).values.diff().abs()) for s in out.scores)
    return tokens, margin


def block_output(model, ids: list[int]) -> torch.Tensor:
    got = {}
    handle = model.model.layers[LAYER].register_forward_hook(
        lambda m, a, o: got.__setitem__("x", (o[0] if isinstance(o, tuple) else o).detach().clone())
    )
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    handle.remove()
    assert torch.equal(out.hidden_states[LAYER + 1][0], got["x"][0]), "hidden_states[L+1] is not block L's output"
    return got["x"][0].to(torch.float32)


def main() -> None:
    if len(sys.argv) > 1:
        path = os.path.abspath(sys.argv[1])
    else:
        fetched = subprocess.run(["bash", os.path.join(ROOT, "scripts", "fetch-gemma3-270m.sh")], check=True,
                                 capture_output=True, text=True)
        path = fetched.stdout.strip().splitlines()[-1]
    directory, name = os.path.split(path)
    with open(path, "rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    torch.manual_seed(0)

    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    backend = tokenizer.backend_tokenizer
    token_cases = []
    for text in TOKENIZER_TEXTS:
        ids = backend.encode(text).ids
        assert tokenizer(text)["input_ids"] == ids, (text, tokenizer(text)["input_ids"], ids)
        token_cases.append({"text": text, "ids": ids, "decodes_to_text": tokenizer.decode(ids, skip_special_tokens=True) == text})

    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    config = model.config

    prompt_ids = [backend.encode(p).ids for p in PROMPTS]
    greedy_tokens, margins, means, norms = [], [], [], []
    for ids in prompt_ids:
        tokens, margin = greedy(model, ids, GREEDY_TOKENS)
        greedy_tokens.append(tokens)
        margins.append(margin)
        hs = block_output(model, ids)
        means.append(hs.mean(dim=0))
        norms.extend(hs.norm(dim=1).tolist())
    logits = torch.stack([last_logits(model, prompt_ids[i]) for i in LOGITS_PROMPTS])

    generator = torch.Generator().manual_seed(7)
    direction = torch.randn(config.hidden_size, generator=generator)
    steer = direction / direction.norm() * STEER_NORM_FACTOR * float(np.median(norms))
    block = model.model.layers[LAYER]
    steered_ids = prompt_ids[STEERED_PROMPT]
    with Steer(block, steer, "last"):
        steered_last = last_logits(model, steered_ids)
        steered_greedy, steered_margin = greedy(model, steered_ids, STEERED_TOKENS)
    with Steer(block, steer, "all"):
        steered_all = last_logits(model, steered_ids)

    os.makedirs(OUT, exist_ok=True)
    golden = {
        "file": name,
        "sha256": sha256,
        "transformers": transformers.__version__,
        "hf_config": jsonable(config.to_dict()),
        "bos_id": config.bos_token_id,
        "eos_id": config.eos_token_id,
        "vocab_size": config.vocab_size,
        "tokenizer": token_cases,
        "prompts": PROMPTS,
        "prompt_ids": prompt_ids,
        "logits_prompts": LOGITS_PROMPTS,
        "greedy": greedy_tokens,
        "greedy_text": [tokenizer.decode(t) for t in greedy_tokens],
        "greedy_min_margin": margins,
        "layer": LAYER,
        "steered_prompt": STEERED_PROMPT,
        "steered_greedy": steered_greedy,
        "steered_greedy_min_margin": steered_margin,
    }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    save_file(
        {
            "last_logits": logits.contiguous(),
            "hidden_mean": torch.stack(means).contiguous(),
            "steer": steer.to(torch.float32).contiguous(),
            "steered_last_logits": steered_last[None].contiguous(),
            "steered_all_logits": steered_all[None].contiguous(),
        },
        os.path.join(OUT, "golden.safetensors"),
    )
    for prompt, text, margin in zip(PROMPTS, golden["greedy_text"], margins):
        print(f"{prompt[:40]!r} -> {text!r} (min margin {margin:.3f})")
    print(f"steered: {tokenizer.decode(steered_greedy)!r} (min margin {steered_margin:.3f})")


if __name__ == "__main__":
    main()
