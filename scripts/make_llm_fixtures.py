#!/usr/bin/env python3
"""Generate the golden decoder-LLM fixtures under tests/fixtures/llm-*/.

The Rust golden tests compare this crate's decoder LLMs (Llama, Qwen2, Mistral),
its chat-template rendering, its greedy decoding and its residual-stream steering
against Hugging Face `transformers` / `tokenizers`. This script produces
everything those tests read:

tests/fixtures/llm-tiny-llama/
    LlamaForCausalLM, hidden 64, intermediate 112, 4 layers, 8 heads, 2 kv heads
    (GQA, head_dim 8), llama3 rope scaling, untied. float32, saved as 2 shards
    (model-0000x-of-00002.safetensors + model.safetensors.index.json).
    config.json is rewritten in the form the Hub checkpoints use
    (`rope_theta` + `rope_scaling` at the top level, `torch_dtype`, no `head_dim`);
    transformers 5 itself would write `rope_parameters`. The rewritten file is
    reloaded and checked to give the same model.
    Llama-3 special tokens and chat template.
tests/fixtures/llm-tiny-qwen2/
    Qwen2ForCausalLM, hidden 48, 3 layers, 6 heads, 2 kv heads, q/k/v biases,
    tied embeddings (no lm_head.weight is stored), vocab_size larger than the
    tokenizer (the extra embedding rows are never produced by the tokenizer).
    float32, one model.safetensors, config.json as transformers 5 writes it.
    ChatML special tokens and chat template (default system message).
tests/fixtures/llm-tiny-mistral/
    MistralForCausalLM, hidden 64, 2 layers, 4 heads, 2 kv heads, no sliding
    window, untied. bfloat16, one model.safetensors; every reference output comes
    from the stored bf16 weights reloaded as float32. Special tokens at ids 0..4
    (the other tokenizers put them after the BPE vocabulary). Mistral chat
    template that raises on non-alternating roles.
    The steered block L = 1 is this model's last block: no later block reads the
    offset through the cache, so the two steered cache modes must agree here, and
    transformers' output_hidden_states[L + 1] is the final-norm output, not the
    block's (hidden_mean is always the block's own output, taken with a hook).

Each directory holds config.json, generation_config.json, tokenizer.json,
tokenizer_config.json (with `chat_template`), the weights, golden.json and
golden.safetensors.

All three tokenizers share one byte-level BPE (ByteLevel pre-tokenizer and
decoder, no normaliser) trained here on a seeded inline corpus; only the special
tokens, their ids and the post-processor differ. Token ids always come from the
Python `tokenizers` library reading the saved tokenizer.json. (transformers 5's
AutoTokenizer turns the Qwen2 directory into a Qwen2Tokenizer that builds its own
pre-tokenizer and NFC normaliser and so disagrees with tokenizer.json; it is used
here only to render chat templates.)

golden.json:
    prompts, prompt_ids          3 plain prompts (post-processor specials added)
    greedy                       [3][32] greedy tokens, no stopping, no steering
    greedy_min_margin            [3] smallest top1 - top2 logit gap over those steps
    layer                        L, the 0-based decoder block that is steered
    alpha                        1.0 (the stored `steer` is already the offset)
    steered_min_margin           [3][2] the same for the two steered lists below
    steered_greedy_steered_cache [3][16] hook on block L adds `steer` at the last
                                 position of every forward call, KV cache on
    steered_greedy_clean_cache   [3][16] no cache: every step re-runs the whole
                                 sequence, `steer` added at the last position only
    steered_cache_modes_differ   [3] whether the two lists above differ
    chat                         [{messages, add_generation_prompt, rendered, ids}]
                                 or {messages, add_generation_prompt, error: true,
                                 error_message} (HF apply_chat_template; ids encoded
                                 without adding special tokens again)
    eos_ids                      stop ids from generation_config.json
    greedy_contains_eos          [3] whether `greedy` holds a stop id (it must not stop)
    bos_id, pad_id, vocab_size (config), tokenizer_vocab_size
golden.safetensors (float32):
    last_logits          [3, vocab]  last prompt position, one prompt at a time
    hidden_mean          [3, hidden] mean over the prompt's tokens of the output
                                     of block L (= output_hidden_states[L + 1]
                                     unless L is the last block)
    steer                [hidden]    the offset vector (alpha already applied), a
                                     seeded random direction with the norm of a
                                     typical token's block-L output
    steered_last_logits  [3, vocab]  `steer` added at the last position of block L
    steered_all_logits   [3, vocab]  `steer` added at every position of block L

The models are tiny and randomly initialised (seeded), with every parameter
re-drawn (no zero bias, no unit norm weight) so that a mistake anywhere in the
forward pass changes the outputs.

Run from the repository root:  python3 scripts/make_llm_fixtures.py
Requires: torch, transformers (5.x), tokenizers, safetensors, numpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

import transformers
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

BPE_VOCAB = 600          # byte alphabet (256) + merges, before special tokens
LAYER = 1                # steered decoder block (0-based)
ALPHA = 1.0
GREEDY_TOKENS = 32
STEERED_TOKENS = 16
# |steer| = factor * median per-token norm of block L's output. At 2-4x the offset swamps
# these tiny models (every step then yields one fixed token in both cache modes).
STEER_NORM_FACTOR = 1.0
# Every greedy step's top1 - top2 logit gap must exceed this, so that an engine matching the
# logits to ~1e-4 reproduces the tokens (the seeds are chosen to satisfy it).
MIN_MARGIN = 2e-3


# --------------------------------------------------------------------------
# Corpus and tokenizers
# --------------------------------------------------------------------------

def corpus() -> list[str]:
    """A few hundred seeded English sentences about photos, classes, prompts, numbers."""
    rng = random.Random(31337)
    things = [
        "cat", "dog", "golden retriever", "tabby cat", "sports car", "airplane", "sunflower", "rose",
        "pizza", "sushi", "mountain bike", "forest", "beach", "river", "highway", "church", "kitchen",
        "tiger", "zebra", "pickup truck", "sailboat", "tulip", "hamburger", "waterfall", "desert",
        "bedroom", "lighthouse", "satellite image", "texture", "person playing guitar",
    ]
    styles = [
        "a photo of a", "a blurry photo of a", "a close-up photo of the", "a bright photo of a",
        "a dark photo of the", "a cropped photo of a", "a sketch of a", "a painting of the",
        "itap of a", "a low resolution photo of a", "a good photo of the", "a photo of the small",
        "a photo of the large", "an origami", "a rendering of a", "a tattoo of a",
    ]
    adjectives = ["clear", "noisy", "colorful", "grey", "tiny", "huge", "famous", "common", "rare", "simple"]
    verbs = ["shows", "contains", "depicts", "captures", "features"]
    places = ["in the park", "at night", "on the street", "in a studio", "from above", "under water"]
    out: list[str] = []
    for _ in range(140):
        out.append(f"{rng.choice(styles)} {rng.choice(things)}.")
    for _ in range(80):
        out.append(
            f"This {rng.choice(adjectives)} image {rng.choice(verbs)} a {rng.choice(things)} "
            f"{rng.choice(places)}."
        )
    for _ in range(60):
        acc = rng.randint(10, 99)
        out.append(f"The template \"{rng.choice(styles)} <category>.\" scored {acc}% accuracy.")
    for _ in range(40):
        out.append(
            f"Category {rng.randint(0, 999)}: {rng.choice(things)}, with {rng.randint(1, 64)} images "
            f"and {rng.randint(2, 9)}.{rng.randint(0, 9)} percent error."
        )
    for _ in range(40):
        out.append(
            f"Please propose a new prompt template for the {rng.choice(things)} dataset, "
            f"using the <category> slot. Answer with the template only."
        )
    out += [
        "You are a helpful assistant.",
        "Zero-shot classification with CLIP compares images with text.",
        "The numbers are 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100 and 1000.",
        "Accuracy rose from 61.9 to 64.5 percent on ImageNet.",
    ]
    return out


def train_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train the shared byte-level BPE; return (vocab, merges)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    assert len(vocab) == BPE_VOCAB, len(vocab)
    return vocab, merges


def build_tokenizer(vocab: dict[str, int], merges, family: dict) -> Tokenizer:
    """The shared BPE with this family's special tokens and post-processor."""
    leading = family.get("specials_first", [])
    full = {t: i for i, t in enumerate(leading)}
    for t, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        full[t] = i + len(leading)
    tok = Tokenizer(models.BPE(vocab=full, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = leading + family.get("specials_last", [])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    for i, t in enumerate(leading):
        assert tok.token_to_id(t) == i
    bos = family["bos_token"]
    byte_level = processors.ByteLevel(trim_offsets=False)
    if family["add_bos"]:
        bos_id = tok.token_to_id(bos)
        template = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A:0 {bos}:1 $B:1",
            special_tokens=[(bos, bos_id)],
        )
        tok.post_processor = processors.Sequence([byte_level, template])
    else:
        tok.post_processor = byte_level
    return tok


LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

QWEN2_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

MISTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant...') }}\n"
    "    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- ' ' + message['content'] + eos_token}}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are supported, with the exception of "
    "an initial optional system message!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
)

SYSTEM = "You help find prompt templates for zero-shot image classification with CLIP."
USER = (
    "Dataset: pets, photos of 37 breeds of cats and dogs.\n"
    "a photo of a <category>. 81%\n"
    "Propose one new template with the <category> slot."
)
USER_PADDED = "  \n" + USER + "\n\n "   # white space the Llama-3 template trims
ASSISTANT = "a close-up photo of a <category>, a type of pet."

CHAT_CASES = [
    dict(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
         add_generation_prompt=True),
    dict(messages=[{"role": "user", "content": USER_PADDED}], add_generation_prompt=True),
    dict(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
         add_generation_prompt=False),
    dict(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER},
                   {"role": "assistant", "content": ASSISTANT},
                   {"role": "user", "content": "Another one, please: 42%"}],
         add_generation_prompt=True),
    dict(messages=[{"role": "user", "content": "a photo of a <category>."},
                   {"role": "assistant", "content": ASSISTANT},
                   {"role": "user", "content": "Shorter."}],
         add_generation_prompt=False),
]

MISTRAL_ERROR_CASES = [
    dict(messages=[{"role": "user", "content": USER}, {"role": "user", "content": "Again."}],
         add_generation_prompt=True),
    dict(messages=[{"role": "system", "content": SYSTEM}, {"role": "assistant", "content": ASSISTANT}],
         add_generation_prompt=True),
]

PROMPTS = [
    "a photo of a cat.",
    "This blurry image shows a golden retriever in the park, 42 images.",
    "The template \"a bright photo of a <category>.\" scored 64% accuracy. Please propose a new prompt "
    "template for the sushi dataset, using the <category> slot.",
]


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

FAMILIES = [
    dict(
        name="llm-tiny-llama",
        seed=20240701,
        cls=LlamaForCausalLM,
        specials_last=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                       "<|eot_id|>"],
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token=None,
        add_bos=True,
        tokenizer_class="PreTrainedTokenizerFast",
        chat_template=LLAMA3_TEMPLATE,
        gen_eos=["<|end_of_text|>", "<|eot_id|>"],
        config_eos=["<|end_of_text|>", "<|eot_id|>"],
        extra_vocab=0,
        std=0.12,
        head_std=0.3,
        emb_std=1.0,
        make_config=lambda v, ids: LlamaConfig(
            vocab_size=v, hidden_size=64, intermediate_size=112, num_hidden_layers=4,
            num_attention_heads=8, num_key_value_heads=2, rope_theta=500000.0,
            # original_max_position_embeddings 256: with head_dim 8 and theta 5e5 the four
            # wavelengths are 6.3, 167, 4443 and 1.2e5, so one frequency is kept, one is
            # interpolated (the smooth branch) and two are divided by the factor.
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 256},
            max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False,
            attention_bias=False, mlp_bias=False, hidden_act="silu", **ids),
        dtype=torch.float32,
        shards=2,
        legacy_config=True,
    ),
    dict(
        name="llm-tiny-qwen2",
        seed=20240702,
        cls=Qwen2ForCausalLM,
        specials_last=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        add_bos=False,
        tokenizer_class="Qwen2Tokenizer",
        chat_template=QWEN2_TEMPLATE,
        gen_eos=["<|im_end|>", "<|endoftext|>"],
        config_eos="<|im_end|>",
        extra_vocab=37,   # config vocab_size 640 > tokenizer's 603, as Qwen2 checkpoints pad it
        std=0.2,
        head_std=0.3,   # unused: tied
        emb_std=0.2,
        make_config=lambda v, ids: Qwen2Config(
            vocab_size=v, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
            num_attention_heads=6, num_key_value_heads=2, rope_theta=1000000.0, rms_norm_eps=1e-6,
            tie_word_embeddings=True, max_position_embeddings=512, hidden_act="silu",
            use_sliding_window=False, **ids),
        dtype=torch.float32,
        shards=1,
        legacy_config=False,
    ),
    dict(
        name="llm-tiny-mistral",
        seed=20240704,
        cls=MistralForCausalLM,
        specials_first=["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token=None,
        unk_token="<unk>",
        add_bos=True,
        tokenizer_class="LlamaTokenizer",
        chat_template=MISTRAL_TEMPLATE,
        gen_eos="</s>",
        config_eos="</s>",
        extra_vocab=0,
        std=0.12,
        head_std=0.3,
        emb_std=1.0,
        make_config=lambda v, ids: MistralConfig(
            vocab_size=v, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, sliding_window=None, rope_theta=10000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=1024,
            hidden_act="silu", **ids),
        dtype=torch.bfloat16,
        shards=1,
        legacy_config=False,
    ),
]


def reinit_(model: torch.nn.Module, seed: int, std: float, head_std: float, emb_std: float,
            real_vocab: int, norm_mean: float = 1.0) -> None:
    """Re-draw every parameter so that none is trivial (zero bias, unit norm, ...)."""
    gen = torch.Generator().manual_seed(seed)

    def draw(shape, mean: float, s: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * s + mean

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(draw(p.shape, norm_mean, 0.1))
            elif name.endswith("bias"):
                p.copy_(draw(p.shape, 0.0, 0.1))
            elif name.endswith("embed_tokens.weight"):
                w = draw(p.shape, 0.0, emb_std)
                # rows past the tokenizer's vocabulary (padding rows) stay small
                w[real_vocab:] *= 0.02
                p.copy_(w)
            elif name == "lm_head.weight":
                p.copy_(draw(p.shape, 0.0, head_std))
            else:
                p.copy_(draw(p.shape, 0.0, std))


def load_model(cls, path: str):
    model = cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return model.to(torch.float32).eval()


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def legacy_config(model_dir: str) -> dict:
    """Rewrite config.json the way Hub Llama-3.x checkpoints spell it; return it."""
    path = os.path.join(model_dir, "config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    assert cfg.pop("head_dim") == cfg["hidden_size"] // cfg["num_attention_heads"]
    cfg = dict(sorted(cfg.items()))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return cfg


# --------------------------------------------------------------------------
# Reference computations
# --------------------------------------------------------------------------

class Steer:
    """Forward hook on a decoder block adding a vector to its output (last or every position)."""

    def __init__(self, block: torch.nn.Module, vec: torch.Tensor, mode: str):
        self.vec, self.mode = vec, mode
        self.handle = block.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        hs = output[0] if isinstance(output, tuple) else output
        hs = hs.clone()
        if self.mode == "last":
            hs[:, -1, :] += self.vec
        else:
            hs += self.vec
        return (hs,) + tuple(output[1:]) if isinstance(output, tuple) else hs

    def remove(self) -> None:
        self.handle.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def logits_of(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].to(torch.float32)


def hf_greedy(model, ids: list[int], n: int, use_cache: bool) -> list[int]:
    gc = GenerationConfig(
        do_sample=False, num_beams=1, max_new_tokens=n, min_new_tokens=0,
        eos_token_id=None, pad_token_id=0, bos_token_id=None, use_cache=use_cache,
    )
    # generate() fills unset fields from the model's generation_config (which has the stop
    # ids from generation_config.json), so swap in a blank one: no stopping at all.
    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                generation_config=gc,
            )
    finally:
        model.generation_config = saved
    new = out[0, len(ids):].tolist()
    assert len(new) == n, (len(new), n)
    return new


def full_recompute_greedy(model, ids: list[int], n: int) -> tuple[list[int], float]:
    """Argmax loop without a cache: the whole sequence each step. Returns (tokens, min margin)."""
    seq = list(ids)
    margin = float("inf")
    for _ in range(n):
        last = logits_of(model, seq)[-1]
        top = torch.topk(last, 2).values
        margin = min(margin, float(top[0] - top[1]))
        seq.append(int(last.argmax()))
    return seq[len(ids):], margin


def cached_greedy(model, ids: list[int], n: int) -> tuple[list[int], float]:
    """Argmax loop feeding one token per call with a KV cache. Returns (tokens, min margin)."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
        cache = out.past_key_values if hasattr(out, "past_key_values") and out.past_key_values is not None \
            else out.cache
        toks = []
        margin = float("inf")

        def pick(logits: torch.Tensor) -> int:
            nonlocal margin
            top = torch.topk(logits, 2).values
            margin = min(margin, float(top[0] - top[1]))
            return int(logits.argmax())

        nxt = pick(out.logits[0, -1])
        for _ in range(n):
            toks.append(nxt)
            if len(toks) == n:
                break
            out = model(input_ids=torch.tensor([[nxt]]), cache=cache, use_cache=True)
            cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else out.cache
            nxt = pick(out.logits[0, -1])
    return toks, margin


def block_outputs(model, ids: list[int]) -> torch.Tensor:
    """Output of decoder block LAYER for every position, via output_hidden_states and a hook."""
    got = {}
    h = model.model.layers[LAYER].register_forward_hook(
        lambda m, a, o: got.__setitem__("x", (o[0] if isinstance(o, tuple) else o).detach().clone())
    )
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    h.remove()
    hs = got["x"][0]
    n_layers = model.config.num_hidden_layers
    assert len(out.hidden_states) == n_layers + 1
    if LAYER + 1 < n_layers:
        assert torch.equal(out.hidden_states[LAYER + 1][0], hs), "hidden_states[L+1] is not block L's output"
    else:
        # transformers replaces the last entry by the final-norm output
        assert torch.allclose(out.hidden_states[LAYER + 1][0], model.model.norm(hs), atol=1e-6)
    return hs.to(torch.float32)


def render_chat(hf_tok, tok: Tokenizer, case: dict) -> dict:
    entry = {"messages": case["messages"], "add_generation_prompt": case["add_generation_prompt"]}
    try:
        rendered = hf_tok.apply_chat_template(
            case["messages"], tokenize=False, add_generation_prompt=case["add_generation_prompt"]
        )
    except Exception as e:  # jinja2 TemplateError raised by raise_exception
        entry["error"] = True
        entry["error_message"] = str(e)
        return entry
    assert isinstance(rendered, str)
    entry["rendered"] = rendered
    entry["ids"] = tok.encode(rendered, add_special_tokens=False).ids
    return entry


# --------------------------------------------------------------------------

def make_family(fam: dict, vocab: dict[str, int], merges) -> dict:
    model_dir = os.path.join(FIXTURES, fam["name"])
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(model_dir)

    # tokenizer -----------------------------------------------------------------
    tok = build_tokenizer(vocab, merges, fam)
    tok_path = os.path.join(model_dir, "tokenizer.json")
    tok.save(tok_path, pretty=True)
    tok = Tokenizer.from_file(tok_path)
    tid = tok.token_to_id
    tok_vocab = tok.get_vocab_size(with_added_tokens=True)
    vocab_size = tok_vocab + fam["extra_vocab"]

    bos_id = tid(fam["bos_token"]) if fam["bos_token"] else None
    pad_id = tid(fam["pad_token"]) if fam["pad_token"] else None
    config_eos = [tid(t) for t in fam["config_eos"]] if isinstance(fam["config_eos"], list) \
        else tid(fam["config_eos"])
    gen_eos = [tid(t) for t in fam["gen_eos"]] if isinstance(fam["gen_eos"], list) else tid(fam["gen_eos"])

    tok_cfg = {
        "add_bos_token": fam["add_bos"],
        "add_eos_token": False,
        "bos_token": fam["bos_token"],
        "chat_template": fam["chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": fam["eos_token"],
        "model_max_length": 512,
        "pad_token": fam["pad_token"],
        "tokenizer_class": fam["tokenizer_class"],
    }
    if fam.get("unk_token"):
        tok_cfg["unk_token"] = fam["unk_token"]
    write_json(os.path.join(model_dir, "tokenizer_config.json"), tok_cfg)

    gen_cfg = {"bos_token_id": bos_id, "eos_token_id": gen_eos}
    if pad_id is not None:
        gen_cfg["pad_token_id"] = pad_id
    if bos_id is None:
        del gen_cfg["bos_token_id"]
    write_json(os.path.join(model_dir, "generation_config.json"), gen_cfg)

    # model ---------------------------------------------------------------------
    ids_cfg = dict(bos_token_id=bos_id, eos_token_id=config_eos, pad_token_id=pad_id)
    config = fam["make_config"](vocab_size, ids_cfg)
    config._attn_implementation = "eager"
    torch.manual_seed(fam["seed"])
    model = fam["cls"](config).to(torch.float32).eval()
    reinit_(model, fam["seed"], fam["std"], fam["head_std"], fam["emb_std"], tok_vocab, fam.get("norm_mean", 1.0))

    if fam["dtype"] == torch.float32 and fam["shards"] > 1:
        total = sum(p.numel() * 4 for p in model.state_dict().values())
        model.save_pretrained(model_dir, max_shard_size=f"{int(total * 0.6) // 1000}KB")
    else:
        model.to(fam["dtype"]).save_pretrained(model_dir, max_shard_size="100GB")
    # save_pretrained may write its own generation_config.json; keep ours
    write_json(os.path.join(model_dir, "generation_config.json"), gen_cfg)

    shards = sorted(f for f in os.listdir(model_dir) if f.startswith("model") and f.endswith(".safetensors"))
    if fam["shards"] > 1:
        assert len(shards) == fam["shards"], shards
        assert os.path.exists(os.path.join(model_dir, "model.safetensors.index.json"))
    else:
        assert shards == ["model.safetensors"], shards
    stored: dict[str, tuple] = {}
    for s in shards:
        for k, v in load_file(os.path.join(model_dir, s)).items():
            assert v.dtype == fam["dtype"], (k, v.dtype)
            stored[k] = (tuple(v.shape), str(v.dtype).replace("torch.", ""), s)

    if fam["legacy_config"]:
        fam.get("rewrite_config", legacy_config)(model_dir)

    reloaded = load_model(fam["cls"], model_dir)
    rc = reloaded.config
    assert rc.vocab_size == vocab_size and rc.tie_word_embeddings == config.tie_word_embeddings
    assert rc.rope_parameters == config.rope_parameters, (rc.rope_parameters, config.rope_parameters)
    assert getattr(rc, "layer_types", None) == getattr(config, "layer_types", None)
    if fam["dtype"] == torch.float32:
        for (n, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
            assert torch.equal(a, b), n
    if config.tie_word_embeddings:
        assert "lm_head.weight" not in stored
        assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    model = reloaded

    # chat templates --------------------------------------------------------------
    hf_tok = AutoTokenizer.from_pretrained(model_dir)
    chat = [render_chat(hf_tok, tok, c) for c in CHAT_CASES]
    if fam["name"] == "llm-tiny-mistral":
        chat += [render_chat(hf_tok, tok, c) for c in MISTRAL_ERROR_CASES]
    for c, entry in zip(CHAT_CASES, chat):
        assert "rendered" in entry, (fam["name"], entry)
    for entry in chat[len(CHAT_CASES):]:
        assert entry.get("error") and "roles must alternate" in entry["error_message"], entry

    # prompts ---------------------------------------------------------------------
    prompt_ids = [tok.encode(p).ids for p in PROMPTS]
    for p, ids in zip(PROMPTS, prompt_ids):
        assert 5 <= len(ids) <= 40, (p, len(ids))
        assert (ids[0] == bos_id) == fam["add_bos"]
        assert max(ids) < tok_vocab

    # transformers reading tokenizer.json must agree with `tokenizers`
    file_tok = PreTrainedTokenizerFast(tokenizer_file=tok_path)
    for p, ids in zip(PROMPTS, prompt_ids):
        assert file_tok(p)["input_ids"] == ids, (fam["name"], p)
        assert tok.decode(ids) == p
    for entry in chat:
        if "ids" in entry:
            assert file_tok(entry["rendered"], add_special_tokens=False)["input_ids"] == entry["ids"]
    # AutoTokenizer is used for the chat template only: in transformers 5 it may pick a
    # model-specific class (Qwen2Tokenizer) that builds its own pre-tokenizer and normaliser
    # instead of the ones in tokenizer.json.
    auto_agrees = all(hf_tok(p)["input_ids"] == ids for p, ids in zip(PROMPTS, prompt_ids))

    last_logits, greedy, margins, hidden_mean, norms = [], [], [], [], []
    for ids in prompt_ids:
        logits = logits_of(model, ids)
        last_logits.append(logits[-1])
        g_cache = hf_greedy(model, ids, GREEDY_TOKENS, use_cache=True)
        g_nocache = hf_greedy(model, ids, GREEDY_TOKENS, use_cache=False)
        g_manual, margin = full_recompute_greedy(model, ids, GREEDY_TOKENS)
        assert g_cache == g_nocache == g_manual, (g_cache, g_nocache, g_manual)
        assert len(set(g_cache)) >= 8, f"{fam['name']}: greedy output too repetitive: {g_cache}"
        assert max(g_cache) < tok_vocab, "greedy produced a padding-row id"
        greedy.append(g_cache)
        margins.append(margin)
        hs = block_outputs(model, ids)
        hidden_mean.append(hs.mean(dim=0))
        norms.extend(hs.norm(dim=-1).tolist())

    # steering --------------------------------------------------------------------
    gen = torch.Generator().manual_seed(fam["seed"] + 1)
    direction = torch.randn(config.hidden_size, generator=gen)
    steer = ALPHA * direction / direction.norm() * STEER_NORM_FACTOR * float(np.median(norms))
    block = model.model.layers[LAYER]

    steered_last, steered_all, sg_steered, sg_clean, sg_steered_manual = [], [], [], [], []
    steered_margins = []
    hook = Steer(block, steer, "last")
    for ids in prompt_ids:
        steered_last.append(logits_of(model, ids)[-1])
        sg_steered.append(hf_greedy(model, ids, STEERED_TOKENS, use_cache=True))
        toks, m_steered = cached_greedy(model, ids, STEERED_TOKENS)
        sg_steered_manual.append(toks)
        toks, m_clean = full_recompute_greedy(model, ids, STEERED_TOKENS)
        sg_clean.append(toks)
        steered_margins.append([m_steered, m_clean])
    hook.remove()
    hook = Steer(block, steer, "all")
    for ids in prompt_ids:
        steered_all.append(logits_of(model, ids)[-1])
    hook.remove()
    assert sg_steered == sg_steered_manual, (sg_steered, sg_steered_manual)
    assert max(max(x) for x in sg_steered + sg_clean) < tok_vocab, "steered greedy produced a padding-row id"
    differ = [a != b for a, b in zip(sg_steered, sg_clean)]
    assert min(margins) > MIN_MARGIN and min(min(m) for m in steered_margins) > MIN_MARGIN, \
        (fam["name"], margins, steered_margins)
    if LAYER + 1 < config.num_hidden_layers:
        assert any(differ), f"{fam['name']}: steered and clean cache modes agree"
    else:
        # steering the last block: no later block reads the offset through the cache
        assert not any(differ)
    for a, b, g in zip(sg_steered, sg_clean, greedy):
        assert a[0] == b[0]  # the prefill is the same in both modes
    assert any(a != g[:STEERED_TOKENS] for a, g in zip(sg_steered, greedy)), "steering has no effect"
    # hooks really detached: plain logits unchanged
    for ids, ref in zip(prompt_ids, last_logits):
        assert torch.equal(logits_of(model, ids)[-1], ref)

    eos_list = gen_eos if isinstance(gen_eos, list) else [gen_eos]
    tensors = {
        "last_logits": torch.stack(last_logits),
        "hidden_mean": torch.stack(hidden_mean),
        "steer": steer.to(torch.float32),
        "steered_last_logits": torch.stack(steered_last),
        "steered_all_logits": torch.stack(steered_all),
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(model_dir, "golden.safetensors"))
    write_json(
        os.path.join(model_dir, "golden.json"),
        {
            "prompts": PROMPTS,
            "prompt_ids": prompt_ids,
            "greedy": greedy,
            "greedy_min_margin": margins,
            "layer": LAYER,
            "alpha": ALPHA,
            "steered_greedy_steered_cache": sg_steered,
            "steered_greedy_clean_cache": sg_clean,
            "steered_cache_modes_differ": differ,
            "steered_min_margin": steered_margins,
            "chat": chat,
            "eos_ids": gen_eos if isinstance(gen_eos, list) else [gen_eos],
            "greedy_contains_eos": [any(t in eos_list for t in g) for g in greedy],
            "bos_id": bos_id,
            "pad_id": pad_id,
            "vocab_size": vocab_size,
            "tokenizer_vocab_size": tok_vocab,
        },
    )

    return dict(
        name=fam["name"], vocab_size=vocab_size, tok_vocab=tok_vocab, bos=bos_id, pad=pad_id,
        config_eos=config_eos, gen_eos=gen_eos,
        specials={t: tid(t) for t in fam.get("specials_first", []) + fam.get("specials_last", [])},
        auto_tok=f"{type(hf_tok).__name__} (agrees with tokenizer.json: {auto_agrees})",
        eos_in_greedy=[any(t in eos_list for t in g) for g in greedy],
        stored=stored, greedy=greedy, margins=margins, differ=differ, steered_margins=steered_margins,
        median_norm=float(np.median(norms)), steer_norm=float(steer.norm()),
        distinct=[len(set(g)) for g in greedy], prompt_lens=[len(x) for x in prompt_ids],
    )


def summary(results: list[dict]) -> None:
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    total = 0
    for r in results:
        d = os.path.join(FIXTURES, r["name"])
        for name in sorted(os.listdir(d)):
            size = os.path.getsize(os.path.join(d, name))
            total += size
            print(f"{size:>10,}  {os.path.relpath(os.path.join(d, name), ROOT)}")
    print(f"{total:>10,}  total")
    for r in results:
        print(f"\n== {r['name']}: vocab_size {r['vocab_size']} (tokenizer {r['tok_vocab']}), bos {r['bos']}, "
              f"pad {r['pad']}, config eos {r['config_eos']}, generation eos {r['gen_eos']}")
        print(f"   specials {r['specials']}")
        print(f"   prompt lengths {r['prompt_lens']}, distinct greedy tokens {r['distinct']}, "
              f"min greedy margins {[round(m, 4) for m in r['margins']]}, "
              f"steered (steered cache, clean cache) {[[round(m, 4) for m in x] for x in r['steered_margins']]}")
        print(f"   AutoTokenizer: {r['auto_tok']}")
        print(f"   greedy contains a stop id {r['eos_in_greedy']}")
        print(f"   block {LAYER} median token norm {r['median_norm']:.3f}, |steer| {r['steer_norm']:.3f}, "
              f"steered vs clean cache differ {r['differ']}")
        for k, (shape, dtype, shard) in r["stored"].items():
            print(f"   {shard}: {k} {shape} {dtype}")
        for k, v in load_file(os.path.join(FIXTURES, r["name"], "golden.safetensors")).items():
            print(f"   golden.safetensors {k} {tuple(v.shape)} {v.dtype}")


def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    vocab, merges = train_bpe()
    again = train_bpe()
    assert (vocab, merges) == again, "BPE training is not deterministic"
    digest = hashlib.sha256(json.dumps([vocab, merges]).encode()).hexdigest()[:16]
    print(f"BPE: {len(vocab)} tokens, {len(merges)} merges, sha256 {digest}")
    results = [make_family(fam, vocab, merges) for fam in FAMILIES]
    summary(results)


if __name__ == "__main__":
    main()
