#!/usr/bin/env python3
"""Generate the golden Gemma 3 fixture tests/fixtures/llm-tiny-gemma3/.

The same recording as scripts/make_llm_fixtures.py (whose model-independent code
this script reuses, and whose docstring describes golden.json and
golden.safetensors), for a tiny random Gemma3ForCausalLM:

    hidden 64, intermediate 96, 4 layers, 4 heads of 16, 2 key/value heads,
    query_pre_attn_scalar 24 (so the query scale is not head_dim^-0.5),
    layers sliding, sliding, full, sliding with a sliding window of 4 tokens
    (every prompt is longer, so the windowed layers mask real keys both in
    prefill and in decoding), local rope base 100, global rope base 5e4 with
    linear rope scaling (factor 4), gelu_pytorch_tanh, tied embeddings,
    float32, one model.safetensors. Every norm weight is drawn around 2 (std 0.1), so
    the (1 + weight) gains sit around 3, and the embeddings are small (std 0.1):
    the embedding is scaled by sqrt(64) and tied to the LM head, and a larger
    one would dominate the residual stream and make every greedy step repeat
    the input token.

config.json is rewritten in the form the Hub checkpoints use (`rope_theta`,
`rope_local_base_freq`, `rope_scaling`, `sliding_window_pattern` 3 instead of
`layer_types`, `torch_dtype`); the rewritten file is reloaded and checked to
give the same model and the same layer types. The tokenizer is the shared
byte-level BPE of the other LLM fixtures with Gemma's special tokens first
(<pad> 0, <eos> 1, <bos> 2, <unk> 3, <start_of_turn>, <end_of_turn>), BOS added,
and a Gemma-style chat template.

Run from the repository root:  python3 scripts/make_gemma3_fixtures.py
Requires: torch, transformers (5.x), tokenizers, safetensors, numpy.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_llm_fixtures as llm  # noqa: E402

LAYER_TYPES = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"]
GEMMA3_WINDOW = 4
SLIDING_WINDOW_PATTERN = 3   # HF: layer i is sliding unless (i + 1) % pattern == 0

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def hub_config(model_dir: str) -> dict:
    """Rewrite config.json the way Hub Gemma 3 checkpoints spell it; return it."""
    path = os.path.join(model_dir, "config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    full, local = dict(rope["full_attention"]), dict(rope["sliding_attention"])
    cfg["rope_theta"] = full.pop("rope_theta")
    cfg["rope_local_base_freq"] = local.pop("rope_theta")
    assert local == {"rope_type": "default"}, local
    cfg["rope_scaling"] = full
    layer_types = cfg.pop("layer_types")
    pattern = [
        "sliding_attention" if (i + 1) % SLIDING_WINDOW_PATTERN else "full_attention"
        for i in range(cfg["num_hidden_layers"])
    ]
    assert layer_types == pattern, (layer_types, pattern)
    cfg.pop("_sliding_window_pattern", None)
    cfg["sliding_window_pattern"] = SLIDING_WINDOW_PATTERN
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    cfg = dict(sorted(cfg.items()))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return cfg


GEMMA3 = dict(
    name="llm-tiny-gemma3",
    seed=20240705,
    cls=Gemma3ForCausalLM,
    specials_first=["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
    bos_token="<bos>",
    eos_token="<eos>",
    pad_token="<pad>",
    unk_token="<unk>",
    add_bos=True,
    tokenizer_class="PreTrainedTokenizerFast",
    chat_template=GEMMA_TEMPLATE,
    gen_eos=["<eos>", "<end_of_turn>"],
    config_eos="<eos>",
    extra_vocab=0,
    std=0.3,
    head_std=0.3,   # unused: tied
    emb_std=0.1,
    norm_mean=2.0,
    make_config=lambda v, ids: Gemma3TextConfig(
        vocab_size=v, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24,
        sliding_window=GEMMA3_WINDOW, layer_types=LAYER_TYPES,
        rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 50000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
        },
        hidden_activation="gelu_pytorch_tanh", max_position_embeddings=512, rms_norm_eps=1e-6,
        tie_word_embeddings=True, final_logit_softcapping=None, attn_logit_softcapping=None,
        attention_bias=False, **ids),
    dtype=torch.float32,
    shards=1,
    legacy_config=True,
    rewrite_config=hub_config,
)


def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    vocab, merges = llm.train_bpe()
    result = llm.make_family(GEMMA3, vocab, merges)
    assert min(result["prompt_lens"]) > GEMMA3_WINDOW, "every prompt crosses the sliding window"
    llm.summary([result])


if __name__ == "__main__":
    main()
