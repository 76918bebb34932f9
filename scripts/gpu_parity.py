#!/usr/bin/env python3
"""Full-size parity check of a built glov-cuda binary against HF transformers, on random weights of real shapes.

    python3 scripts/gpu_parity.py --binary path/to/glov-cuda [--device cuda|cpu] [--llm-layers N] [--clip-layers N]

Run from anywhere; the script reads two tokenizers from the repository it sits in
(tests/fixtures/tokenizer/openai-clip-tokenizer.json.gz: OpenAI CLIP's real 49,408-token BPE, and
tests/fixtures/llm-tiny-llama/: a small byte-level BPE with Llama 3's special tokens). No network, no model hub:

1. Builds, in a temporary folder, two HF model directories with random weights of real shapes, created on
   `--device` in float32, every parameter rounded to bfloat16 and saved as bfloat16 safetensors:
   - clip/: CLIPModel with the values of openai/clip-vit-base-patch32's config.json written out by hand (vision 768
     wide, 12 layers, patch 32, image 224; text 512 wide, 12 layers, vocab 49408, 77 positions, legacy
     eos_token_id 2, so HF pools at the argmax id; projection 512; quick_gelu), its preprocessor_config.json (the
     Hub's shorthand form) and the real OpenAI CLIP tokenizer.json;
   - llm/: LlamaForCausalLM shaped as Llama-3.2-1B (hidden 2048, 16 layers, 32 heads, 8 kv heads, intermediate
     8192, rope_theta 500000, llama3 rope scaling 32 / 1 / 4 / 8192, tied embeddings, vocab 128256), config.json in
     the Hub's form, with the small tokenizer (prompt ids always come from tokenizer.json through the Python
     `tokenizers` library, as the engine reads it).
   Layer norms / RMS norms get weights N(1, 0.1) and biases N(0, 0.02), so that none is trivial.
2. Computes HF's outputs in float32 from those same bf16-rounded parameters (TF32 off, eager attention): CLIP text
   features of a few texts (one past 77 tokens) and image features of a few random 224x224 PNGs; for two prompts
   (a short one and one past 256 tokens, the engine's attention split length): the last-position logits unsteered,
   steered after block L at the last position and at every position (a forward hook on model.model.layers[L]), the
   block-L mean output, and greedy continuations (unsteered; steered with the steered KV cache; steered with the
   clean cache, i.e. the whole sequence recomputed each step with the offset at the last position only).
3. Runs `BINARY --device DEV probe clip`, `probe llm` and `generate --greedy --format json` on the same directories
   and compares: relative error ||ours - hf|| / ||hf|| (CLIP features per row, worst row; logits and hidden means
   per prompt) under --tol (3e-2); the same top-1 token (a different one passes only as a near tie: HF's logit of
   our token within 5 x the rms logit error of HF's top-1); greedy tokens: how many match HF's own greedy
   continuation and, at the first difference, HF's margins there (top1 - top2, top1 - ours); a continuation
   passes when every one of our tokens is HF's argmax given our own earlier tokens (HF run teacher-forced on our
   tokens, steered the same way), or a near tie by the same rule, so bf16 rounding that flips a near tie is
   allowed and every later step is still checked.
   HF's LLM stays in memory (5 GB in f32 for the full model) while the engine runs, for the teacher-forced pass.
4. Prints one JSON object with every comparison (value, tolerance, pass) and exits non-zero when any fails.

On the CPU backend (f32) the errors are ~1e-6..1e-5: that checks this script; the real check is `--device cuda`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer

from make_llm_fixtures import Steer  # the same forward hook the golden fixtures are made with

import transformers
from transformers import CLIPConfig, CLIPModel, GenerationConfig, LlamaConfig, LlamaForCausalLM

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLIP_TOKENIZER_GZ = os.path.join(REPO, "tests", "fixtures", "tokenizer", "openai-clip-tokenizer.json.gz")
LLM_TOKENIZER_DIR = os.path.join(REPO, "tests", "fixtures", "llm-tiny-llama")

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CLIP_TEXTS = [
    "a photo of a cat.",
    "a blurry photo of a Golden Retriever, taken at night!",
    "itap of a {car}?!",
    " ".join("a satellite image of a river crossing a forest next to a highway and a church".split() * 8),
]
N_IMAGES = 4
IMAGE_RANGES = [  # per image, (low, high) of each channel
    [(0.0, 0.9), (0.1, 0.4), (0.5, 1.0)],
    [(0.6, 1.0), (0.5, 0.9), (0.0, 0.3)],
    [(0.0, 0.3), (0.6, 1.0), (0.2, 0.6)],
    [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0)],
]

SHORT_PROMPT = "Please propose a new prompt template for the tabby cat dataset, using the <category> slot."
LONG_SENTENCES = [
    "The template \"a photo of a <category>.\" scored 61% accuracy.",
    "This noisy image depicts a sports car at night.",
    "a close-up photo of the sunflower.",
    "Category 412: lighthouse, with 16 images and 3.5 percent error.",
    "Zero-shot classification with CLIP compares images with text.",
    "The numbers are 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100 and 1000.",
]
TIE_FACTOR = 5  # a near tie: HF's top-1 logit minus HF's logit of our token <= 5 x the rms logit error
LONG_PROMPT_MIN_TOKENS = 300  # past the CUDA attention's split length (256 keys): exercises the split-and-merge


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def rel_err(ours, ref) -> float:
    ours = torch.as_tensor(np.asarray(ours, dtype=np.float64))
    ref = torch.as_tensor(np.asarray(ref, dtype=np.float64))
    if ours.shape != ref.shape:
        return float("inf")
    return float((ours - ref).norm() / ref.norm().clamp_min(1e-30))


def round_to_bf16_(model: torch.nn.Module) -> None:
    """Rounds every floating parameter to bfloat16 in place (kept in float32: the conversion back is exact)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


def perturb_norms_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Norm weights N(1, 0.1), norm and linear biases N(0, 0.02): no parameter is trivially 1 or 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = "norm" in name.lower() or "layer_norm" in name or "ln_" in name
            if is_norm and name.endswith("weight"):
                p.copy_(torch.randn(p.shape, generator=gen).to(p.device) * 0.1 + 1.0)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen).to(p.device) * 0.02)


def save_bf16(model: torch.nn.Module, path: str, drop: tuple[str, ...] = ()) -> int:
    """Saves the persistent floating tensors of the state dict as bfloat16 safetensors; returns the byte count."""
    tensors = {}
    for name, t in model.state_dict().items():
        if name in drop or not t.is_floating_point():
            continue
        tensors[name] = t.detach().to(torch.bfloat16).to("cpu").contiguous()
    save_file(tensors, path, metadata={"format": "pt"})
    return os.path.getsize(path)


def projected(out) -> torch.Tensor:
    """get_*_features returns a tensor in transformers 4 and a model output (pooler = projection) in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def top2(logits: torch.Tensor) -> tuple[int, float, int, float]:
    v, i = torch.topk(logits, 2)
    return int(i[0]), float(v[0]), int(i[1]), float(v[1])


# --------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------

def clip_config_json(layers: int) -> dict:
    """openai/clip-vit-base-patch32's config.json values, written out (layers cut to `layers`)."""
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "projection_dim": 512,
        "torch_dtype": "bfloat16",
        "text_config": {
            "model_type": "clip_text_model",
            "attention_dropout": 0.0,
            "bos_token_id": 0,
            "dropout": 0.0,
            "eos_token_id": 2,
            "hidden_act": "quick_gelu",
            "hidden_size": 512,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "intermediate_size": 2048,
            "layer_norm_eps": 1e-05,
            "max_position_embeddings": 77,
            "num_attention_heads": 8,
            "num_hidden_layers": layers,
            "pad_token_id": 1,
            "projection_dim": 512,
            "vocab_size": 49408,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "attention_dropout": 0.0,
            "dropout": 0.0,
            "hidden_act": "quick_gelu",
            "hidden_size": 768,
            "image_size": 224,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "intermediate_size": 3072,
            "layer_norm_eps": 1e-05,
            "num_attention_heads": 12,
            "num_channels": 3,
            "num_hidden_layers": layers,
            "patch_size": 32,
            "projection_dim": 512,
        },
    }


def clip_preprocessor_json() -> dict:
    """openai/clip-vit-base-patch32's preprocessor_config.json (the Hub's shorthand sizes)."""
    return {
        "crop_size": 224,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": OPENAI_CLIP_MEAN,
        "image_std": OPENAI_CLIP_STD,
        "resample": 3,
        "size": 224,
    }


def make_images(folder: str, n: int, seed: int) -> list[str]:
    """n smooth random 224x224 RGB pictures with pixel noise, each in its own colour ranges, as PNG files."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, 224)[:, None]
    x = np.linspace(0.0, 1.0, 224)[None, :]
    paths = []
    for k in range(n):
        img = np.empty((224, 224, 3))
        for c in range(3):
            field = np.zeros((224, 224))
            for _ in range(4):
                fx, fy = rng.uniform(0.5, 6.0, size=2)
                px, py = rng.uniform(0, 2 * math.pi, size=2)
                field += rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * fx * x + px) * np.cos(2 * math.pi * fy * y + py)
            field += rng.normal(0.0, 0.3, size=(224, 224))
            field = (field - field.min()) / (field.max() - field.min())
            # each image its own colour range per channel, so that the images differ in colour and contrast, not
            # only in texture, and a random vision tower's features differ clearly between them
            lo, hi = IMAGE_RANGES[k % len(IMAGE_RANGES)][c]
            img[..., c] = lo + (hi - lo) * field
        path = os.path.join(folder, f"image{k}.png")
        Image.fromarray(np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8), "RGB").save(path)
        paths.append(path)
    return paths


def pixel_values(model_dir: str, paths: list[str]) -> torch.Tensor:
    """HF's CLIPImageProcessor (PIL backend) on the PNGs, checked against the plain formula (no resize at 224)."""
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    images = [Image.open(p).convert("RGB") for p in paths]
    pv = Processor.from_pretrained(model_dir)(images=images, return_tensors="pt")["pixel_values"].to(torch.float32)
    mean = torch.tensor(OPENAI_CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(OPENAI_CLIP_STD, dtype=torch.float32)[:, None, None]
    plain = torch.stack([
        (torch.from_numpy((np.asarray(im, dtype=np.float64) * (1 / 255)).astype(np.float32)).permute(2, 0, 1) - mean)
        / std for im in images
    ])
    assert tuple(pv.shape) == (len(paths), 3, 224, 224), pv.shape
    assert torch.allclose(pv, plain, atol=1e-5), float((pv - plain).abs().max())
    return pv


def clip_ids(tok: Tokenizer, text: str, context: int = 77) -> list[int]:
    """The engine's rule (and HF tokenizers' truncation with its post-processor): keep the end token."""
    ids = tok.encode(text).ids
    if len(ids) > context:
        ids = ids[: context - 1] + [ids[-1]]
    return ids


def build_clip(work: str, device: str, layers: int, seed: int) -> dict:
    model_dir = os.path.join(work, "clip")
    os.makedirs(model_dir)
    write_json(os.path.join(model_dir, "config.json"), clip_config_json(layers))
    write_json(os.path.join(model_dir, "preprocessor_config.json"), clip_preprocessor_json())
    with gzip.open(CLIP_TOKENIZER_GZ, "rb") as f:
        tok_bytes = f.read()
    with open(os.path.join(model_dir, "tokenizer.json"), "wb") as f:
        f.write(tok_bytes)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    assert tok.get_vocab_size() == 49408
    assert tok.encode("a photo of a cat.").ids == [49406, 320, 1125, 539, 320, 2368, 269, 49407]

    config = CLIPConfig.from_pretrained(model_dir)
    config._attn_implementation = "eager"
    assert config.text_config.eos_token_id == 2 and config.vision_config.hidden_act == "quick_gelu"
    torch.manual_seed(seed)
    with torch.device(device):
        model = CLIPModel(config)
    model = model.to(torch.float32).eval()
    perturb_norms_(model, torch.Generator().manual_seed(seed + 1))
    round_to_bf16_(model)
    size = save_bf16(model, os.path.join(model_dir, "model.safetensors"))

    image_paths = make_images(work, N_IMAGES, seed)
    pv = pixel_values(model_dir, image_paths).to(device)
    ids = [clip_ids(tok, t) for t in CLIP_TEXTS]
    assert max(len(x) for x in ids) == 77, "one text must be truncated"
    end = tok.token_to_id("<|endoftext|>")
    longest = max(len(x) for x in ids)
    input_ids = torch.tensor([x + [end] * (longest - len(x)) for x in ids], device=device)
    mask = torch.tensor([[1] * len(x) + [0] * (longest - len(x)) for x in ids], device=device)
    with torch.no_grad():
        text = projected(model.get_text_features(input_ids=input_ids, attention_mask=mask)).float().cpu()
        image = projected(model.get_image_features(pixel_values=pv)).float().cpu()
        logit_scale = float(model.logit_scale.float().item())
    params = sum(p.numel() for p in model.parameters())
    del model
    return {
        "dir": model_dir,
        "images": image_paths,
        "texts": CLIP_TEXTS,
        "text_ids": ids,
        "text_features": text,
        "image_features": image,
        "logit_scale": logit_scale,
        "parameters": params,
        "weights_bytes": size,
    }


def check_clip(ref: dict, out: dict, tol: float) -> list[dict]:
    checks = []
    for kind in ("text", "image"):
        hf = ref[f"{kind}_features"]
        ours = torch.tensor(out[f"{kind}_features"], dtype=torch.float32)
        if ours.shape != hf.shape:
            checks.append({"name": f"clip_{kind}_features", "pass": False,
                           "error": f"shape {tuple(ours.shape)} != HF {tuple(hf.shape)}"})
            continue
        rows = [rel_err(ours[i], hf[i]) for i in range(len(hf))]
        cos = torch.nn.functional.cosine_similarity(ours.double(), hf.double(), dim=-1)
        unit = hf.double() / hf.double().norm(dim=-1, keepdim=True)
        pairwise = (unit @ unit.T)[~torch.eye(len(hf), dtype=torch.bool)]
        checks.append({
            "name": f"clip_{kind}_features",
            "what": f"{len(hf)} x {hf.shape[1]} projected features; worst row's ||ours - hf|| / ||hf||",
            "rel_err": max(rows),
            "rel_err_per_row": rows,
            "rel_err_all": rel_err(ours, hf),
            "min_cosine": float(cos.min()),
            "hf_max_pairwise_cosine": float(pairwise.max()) if len(pairwise) else None,
            "tol": tol,
            "pass": max(rows) < tol,
        })
    diff = abs(out["logit_scale"] - ref["logit_scale"])
    checks.append({"name": "clip_logit_scale", "ours": out["logit_scale"], "hf": ref["logit_scale"],
                   "abs_err": diff, "tol": 1e-6, "pass": diff < 1e-6})
    return checks


# --------------------------------------------------------------------------
# LLM
# --------------------------------------------------------------------------

def llm_config_json(layers: int, bos: int, eos: int) -> dict:
    """meta-llama/Llama-3.2-1B's config.json values (Hub form: rope_theta + rope_scaling), layers cut to `layers`;
    the special ids are the small tokenizer's."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 32,
        "num_hidden_layers": layers,
        "num_key_value_heads": 8,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": 128256,
    }




def block_output(model, ids: list[int], layer: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(block `layer`'s output [seq, hidden], last-position logits [vocab]) of one unsteered forward pass."""
    got = {}
    h = model.model.layers[layer].register_forward_hook(
        lambda m, a, o: got.__setitem__("x", (o[0] if isinstance(o, tuple) else o).detach().clone()))
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=False, logits_to_keep=1)
    finally:
        h.remove()
    return got["x"][0].float(), out.logits[0, -1].float()


def last_logits(model, ids: list[int], device: str) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=False, logits_to_keep=1)
    return out.logits[0, -1].float()


def hf_generate(model, ids: list[int], n: int, stop: list[int], device: str) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy continuation with HF generate (KV cache), stopping at the engine's stop ids; per-step raw logits."""
    gc = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=n, min_new_tokens=0, eos_token_id=stop,
                          pad_token_id=stop[0], bos_token_id=None, use_cache=True, temperature=None, top_p=None,
                          top_k=None, output_logits=True, return_dict_in_generate=True)
    saved = model.generation_config
    model.generation_config = GenerationConfig()  # nothing merged in from the model's own generation config
    try:
        with torch.no_grad():
            out = model.generate(input_ids=torch.tensor([ids], device=device),
                                 attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                                 generation_config=gc)
    finally:
        model.generation_config = saved
    tokens = out.sequences[0, len(ids):].tolist()
    return tokens, [l[0].float().cpu() for l in out.logits]


def recompute_greedy(model, ids: list[int], n: int, stop: list[int], device: str) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy without a cache: the whole sequence each step (with a hook in `last` mode: GLOV's clean cache)."""
    seq, tokens, steps = list(ids), [], []
    for _ in range(n):
        logits = last_logits(model, seq, device).cpu()
        steps.append(logits)
        t = int(logits.argmax())
        tokens.append(t)
        seq.append(t)
        if t in stop:
            break
    return tokens, steps


def stop_ids(model_dir: str, tok: Tokenizer) -> list[int]:
    """The engine's stop tokens: generation_config.json's eos ids, then tokenizer_config.json's eos_token."""
    ids: list[int] = []
    with open(os.path.join(model_dir, "generation_config.json"), encoding="utf-8") as f:
        eos = json.load(f).get("eos_token_id")
    for i in (eos if isinstance(eos, list) else [eos] if eos is not None else []):
        if i not in ids:
            ids.append(int(i))
    with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        name = json.load(f).get("eos_token")
    if isinstance(name, dict):
        name = name.get("content")
    if name and tok.token_to_id(name) is not None and tok.token_to_id(name) not in ids:
        ids.append(tok.token_to_id(name))
    return ids


def long_prompt(tok: Tokenizer, min_tokens: int) -> str:
    parts, k = [], 0
    while len(tok.encode(" ".join(parts)).ids) < min_tokens:
        parts.append(LONG_SENTENCES[k % len(LONG_SENTENCES)])
        k += 1
    return " ".join(parts)


def build_llm(work: str, device: str, layers: int, steer_layer: int, alpha: float, new_tokens: int, seed: int) -> dict:
    model_dir = os.path.join(work, "llm")
    os.makedirs(model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(os.path.join(LLM_TOKENIZER_DIR, name), os.path.join(model_dir, name))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    bos, eot = tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|end_of_text|>")
    assert bos is not None and eot is not None
    write_json(os.path.join(model_dir, "config.json"), llm_config_json(layers, bos, eot))
    stop = stop_ids(model_dir, tok)

    config = LlamaConfig.from_pretrained(model_dir)
    config._attn_implementation = "eager"
    assert config.tie_word_embeddings and config.num_key_value_heads == 8 and config.head_dim == 64
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    assert rope.get("rope_type") == "llama3" and rope.get("factor") == 32.0, rope
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model = model.to(torch.float32).eval()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "embeddings not tied"
    perturb_norms_(model, torch.Generator().manual_seed(seed + 1))
    round_to_bf16_(model)
    size = save_bf16(model, os.path.join(model_dir, "model.safetensors"), drop=("lm_head.weight",))

    prompts = {"short": SHORT_PROMPT, "long": long_prompt(tok, LONG_PROMPT_MIN_TOKENS)}
    prompt_ids = {k: tok.encode(p).ids for k, p in prompts.items()}
    for k, ids in prompt_ids.items():
        assert ids[0] == bos, (k, ids[:3])
    assert len(prompt_ids["long"]) > 256

    # The steering vector: a seeded random direction with the median norm of block L's outputs over the long
    # prompt (so that the offset moves the logits well past the tolerance); the engine gets it with --alpha.
    hidden, _ = block_output(model, prompt_ids["long"], steer_layer, device)
    gen = torch.Generator().manual_seed(seed + 2)
    direction = torch.randn(config.hidden_size, generator=gen)
    norm = float(hidden.norm(dim=-1).median())
    vector = (direction / direction.norm() * norm / alpha).to(torch.float32)
    steer_path = os.path.join(work, "steer.safetensors")
    save_file({"steer": vector.contiguous()}, steer_path)
    offset = (vector * alpha).to(device)  # alpha * v in f32, as the engine scales it

    refs = {}
    block = model.model.layers[steer_layer]
    for key, ids in prompt_ids.items():
        r = {"ids": ids}
        hs, r["logits"] = block_output(model, ids, steer_layer, device)
        r["hidden_mean"] = hs.mean(dim=0).cpu()
        r["logits"] = r["logits"].cpu()
        for mode in ("last", "all"):
            with Steer(block, offset, mode):
                r[f"steered_{mode}_logits"] = last_logits(model, ids, device).cpu()
        r["greedy"] = hf_generate(model, ids, new_tokens, stop, device)
        with Steer(block, offset, "last"):
            r["greedy_steered"] = hf_generate(model, ids, new_tokens, stop, device)
            r["greedy_steered_clean"] = recompute_greedy(model, ids, new_tokens, stop, device)
        refs[key] = r
    return {
        "model": model,
        "offset": offset,
        "dir": model_dir,
        "prompts": prompts,
        "refs": refs,
        "steer_path": steer_path,
        "steer_norm": norm,
        "stop_ids": stop,
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_bytes": size,
    }


def logits_check(name: str, ours_list, hf: torch.Tensor, tol: float, what: str) -> dict:
    ours = torch.tensor(ours_list, dtype=torch.float32)
    if ours.shape != hf.shape:
        return {"name": name, "pass": False, "error": f"shape {tuple(ours.shape)} != HF {tuple(hf.shape)}"}
    err = rel_err(ours, hf)
    rms_abs = float((ours.double() - hf.double()).pow(2).mean().sqrt())
    hf_top, hf_v1, hf_2nd, hf_v2 = top2(hf)
    our_top = int(ours.argmax())
    gap_to_ours = hf_v1 - float(hf[our_top])
    near_tie = our_top != hf_top and gap_to_ours <= TIE_FACTOR * rms_abs
    return {
        "name": name,
        "what": what,
        "rel_err": err,
        "tol": tol,
        "rms_abs_err": rms_abs,
        "top1_ours": our_top,
        "top1_hf": hf_top,
        "hf_top2_margin": hf_v1 - hf_v2,
        "top1_match": our_top == hf_top,
        "top1_near_tie": near_tie,
        "pass": err < tol and (our_top == hf_top or near_tie),
    }


class SteerFrom:
    """Forward hook adding a vector to a block's output at every position from `start` on (within one call)."""

    def __init__(self, block: torch.nn.Module, vec: torch.Tensor, start: int):
        self.vec, self.start = vec, start
        self.handle = block.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        hs = output[0] if isinstance(output, tuple) else output
        hs = hs.clone()
        hs[:, self.start:, :] += self.vec
        return (hs,) + tuple(output[1:]) if isinstance(output, tuple) else hs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def teacher_forced(model, block, offset, ids: list[int], ours: list[int], mode: str, device: str) -> list[torch.Tensor]:
    """HF's logits at each step of OUR continuation, given our own earlier tokens: the steps' `[vocab]` logits.

    mode "none": unsteered; "steered": the offset at every position from the prompt's last on (what a KV cache
    of steered keys and values holds); "clean": step by step, the offset at the step's last position only."""
    if not ours:
        return []
    seq = ids + ours[:-1]
    if mode == "clean":
        steps = []
        for j in range(len(ours)):
            with Steer(block, offset, "last"):
                steps.append(last_logits(model, seq[: len(ids) + j], device).cpu())
        return steps
    with torch.no_grad():
        if mode == "steered":
            with SteerFrom(block, offset, len(ids) - 1):
                out = model(input_ids=torch.tensor([seq], device=device), use_cache=False, logits_to_keep=len(ours))
        else:
            out = model(input_ids=torch.tensor([seq], device=device), use_cache=False, logits_to_keep=len(ours))
    return [l.float().cpu() for l in out.logits[0]]


def greedy_check(name: str, ours: list[int], hf: tuple[list[int], list[torch.Tensor]], forced: list[torch.Tensor],
                 tie_abs: float, what: str) -> dict:
    """Passes when every one of our tokens is HF's argmax given our own prefix, or within `tie_abs` of it (so a
    near tie may send the two continuations apart, and each step after it is still checked)."""
    hf_tokens, steps = hf
    n = min(len(ours), len(hf_tokens))
    match = next((i for i in range(n) if ours[i] != hf_tokens[i]), n)
    entry = {"name": name, "what": what, "ours": ours, "hf": hf_tokens, "matching": match,
             "compared": max(len(ours), len(hf_tokens)), "all_equal": ours == hf_tokens, "near_tie_abs": tie_abs}
    if steps:
        entry["hf_min_top2_margin"] = min(top2(s)[1] - top2(s)[3] for s in steps)
    if match < n:
        logits = steps[match]
        _, v1, _, v2 = top2(logits)
        entry["first_difference"] = {
            "step": match,
            "hf_top2_margin": v1 - v2,
            "hf_top1_minus_ours": v1 - float(logits[ours[match]]),
            "ours_rank_in_hf": int((logits > logits[ours[match]]).sum()),
            "near_tie": v1 - float(logits[ours[match]]) <= tie_abs,
        }
    elif len(ours) != len(hf_tokens):
        entry["first_difference"] = {"step": match, "note": "one side stopped at a stop token, the other did not"}
    # Teacher-forced: HF's logits along our tokens.
    gaps = [float(l.max() - l[t]) for l, t in zip(forced, ours)]
    off = [j for j, (l, t) in enumerate(zip(forced, ours)) if int(l.argmax()) != t]
    entry["teacher_forced"] = {
        "steps_not_hf_argmax": off,
        "max_hf_top1_minus_ours": max(gaps) if gaps else None,
    }
    entry["pass"] = bool(ours) and len(forced) == len(ours) and all(g <= tie_abs for g in gaps) and (
        len(ours) == len(hf_tokens) or match < n)
    return entry


# --------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------

class Engine:
    def __init__(self, binary: str, device: str, flags: list[str], timeout: float):
        self.binary, self.device, self.flags, self.timeout = binary, device, flags, timeout
        self.calls: list[dict] = []

    def __call__(self, *args: str):
        cmd = [self.binary, "--device", self.device, "-q", *self.flags, *args]
        t0 = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
            rc, stdout, stderr = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, stdout, stderr = "timeout", "", (e.stderr or b"").decode(errors="replace") if isinstance(
                e.stderr, bytes) else (e.stderr or "")
        seconds = time.time() - t0
        shown = " ".join(shlex.quote(a if len(a) < 120 else a[:60] + "..." + a[-20:]) for a in cmd)
        self.calls.append({"command": shown, "seconds": round(seconds, 2), "rc": rc})
        if rc != 0:
            raise RuntimeError(f"exit {rc}: {shown}\n{stderr[-3000:]}")
        return json.loads(stdout)


def run_clip(engine: Engine, ref: dict, tol: float) -> list[dict]:
    args = ["probe", "clip", "--model", ref["dir"]]
    for t in ref["texts"]:
        args += ["--text", t]
    for p in ref["images"]:
        args += ["--image", p]
    try:
        out = engine(*args)
    except Exception as e:
        return [{"name": "clip_probe", "pass": False, "error": str(e)}]
    return check_clip(ref, out, tol)


def run_llm(engine: Engine, llm: dict, steer_layer: int, alpha: float, new_tokens: int, tol: float,
            device: str) -> list[dict]:
    checks = []
    d = llm["dir"]
    model, offset = llm["model"], llm["offset"]
    block = model.model.layers[steer_layer]
    steer = ["--steer", llm["steer_path"], "--steer-layer", str(steer_layer), "--alpha", repr(alpha)]
    for key, prompt in llm["prompts"].items():
        r = llm["refs"][key]
        n_ids = len(r["ids"])
        tag = f"llm_{key}"
        tie_abs = None

        def attempt(name, fn):
            try:
                return fn()
            except Exception as e:
                checks.append({"name": name, "pass": False, "error": str(e)})
                return None

        out = attempt(f"{tag}_probe", lambda: engine("probe", "llm", "--model", d, "--prompt", prompt,
                                                     "--layer", str(steer_layer)))
        if out is not None:
            checks.append({"name": f"{tag}_prompt_ids", "what": f"{n_ids} prompt ids: engine vs Python tokenizers",
                           "pass": out["token_ids"] == r["ids"]})
            c = logits_check(f"{tag}_logits", out["last_logits"], r["logits"], tol,
                             f"last-position logits, {n_ids}-token prompt, unsteered")
            tie_abs = TIE_FACTOR * c.get("rms_abs_err", 0.0)
            checks.append(c)
            hm = torch.tensor(out["hidden_mean"], dtype=torch.float32)
            err = rel_err(hm, r["hidden_mean"])
            checks.append({"name": f"{tag}_hidden_mean", "what": f"mean over the prompt of block {steer_layer}'s "
                           "output", "rel_err": err, "tol": tol, "pass": err < tol})
        for mode in ("last", "all"):
            out = attempt(f"{tag}_steered_{mode}_probe", lambda: engine(
                "probe", "llm", "--model", d, "--prompt", prompt, *steer, "--steer-mode", mode))
            if out is not None:
                c = logits_check(f"{tag}_steered_{mode}_logits", out["last_logits"], r[f"steered_{mode}_logits"],
                                 tol, f"last-position logits, offset after block {steer_layer} at "
                                 + ("the last position" if mode == "last" else "every position"))
                c["steer_effect_rel"] = rel_err(r[f"steered_{mode}_logits"], r["logits"])
                checks.append(c)
        if tie_abs is None:
            tie_abs = TIE_FACTOR * tol * float(r["logits"].pow(2).mean().sqrt())
        gen = ["generate", "--llm", d, "--prompt", prompt, "--greedy", "--max-new-tokens", str(new_tokens),
               "--format", "json"]
        for name, extra, ref_key, mode, what in (
            ("greedy", [], "greedy", "none", "greedy tokens, unsteered"),
            ("greedy_steered", [*steer, "--steer-cache", "steered"], "greedy_steered", "steered",
             "greedy tokens, steered at the last position, steered KV cache (HF generate + hook)"),
            ("greedy_steered_clean", [*steer, "--steer-cache", "clean"], "greedy_steered_clean", "clean",
             "greedy tokens, steered at the last position, clean KV cache (HF: whole sequence recomputed)"),
        ):
            out = attempt(f"{tag}_{name}", lambda: engine(*gen, *extra))
            if out is None:
                continue
            if out["prompt_token_ids"] != r["ids"]:
                checks.append({"name": f"{tag}_{name}_prompt_ids", "pass": False})
            ours = out["sequences"][0]["token_ids"]
            forced = teacher_forced(model, block, offset, r["ids"], ours, mode, device)
            checks.append(greedy_check(f"{tag}_{name}", ours, r[ref_key], forced, tie_abs, what))
    return checks


# --------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="the built glov-cuda binary")
    ap.add_argument("--device", default="cuda", help="where both HF and the engine run: cuda, cuda:N or cpu")
    ap.add_argument("--llm-layers", "--layers", dest="llm_layers", type=int, default=16,
                    help="LLM decoder blocks (Llama-3.2-1B has 16)")
    ap.add_argument("--clip-layers", type=int, default=12, help="layers of each CLIP tower (ViT-B/32 has 12)")
    ap.add_argument("--steer-layer", type=int, default=None,
                    help="the steered block L (default: GLOV's 17/32 of the depth, at most the second-to-last)")
    ap.add_argument("--alpha", type=float, default=0.75, help="--alpha given to the engine")
    ap.add_argument("--new-tokens", type=int, default=8, help="greedy tokens compared")
    ap.add_argument("--tol", type=float, default=3e-2, help="relative error tolerance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine-flag", action="append", default=[],
                    help="extra global flag(s) for the engine, e.g. --engine-flag=--kernels=plain (repeatable)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed per engine call")
    ap.add_argument("--skip-clip", action="store_true")
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="build the models in DIR and keep them (default: a temp dir)")
    ap.add_argument("--output", metavar="FILE", help="also write the JSON report to FILE")
    args = ap.parse_args()

    t_start = time.time()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} is not an executable")
    hf_device = "cuda" if args.device.startswith("cuda") and ":" not in args.device else args.device
    if hf_device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    layers = args.llm_layers
    steer_layer = args.steer_layer if args.steer_layer is not None else max(0, min(layers * 17 // 32, layers - 2))
    assert 0 <= steer_layer < layers, "--steer-layer out of range"

    if args.keep:
        os.makedirs(args.keep, exist_ok=False)
        work, cleanup = os.path.abspath(args.keep), None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="glov-parity-")
        work = cleanup.name

    report: dict = {
        "binary": binary,
        "device": args.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu": torch.cuda.get_device_name() if hf_device.startswith("cuda") else None,
        "settings": {"llm_layers": layers, "clip_layers": args.clip_layers, "steer_layer": steer_layer,
                     "alpha": args.alpha, "new_tokens": args.new_tokens, "tol": args.tol, "seed": args.seed,
                     "engine_flags": args.engine_flag},
        "seconds": {},
    }
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        version = f"unknown ({e})"
    report["binary_version"] = version

    clip = llm = None
    t = time.time()
    if not args.skip_clip:
        clip = build_clip(work, hf_device, args.clip_layers, args.seed)
        report["clip"] = {"parameters": clip["parameters"], "weights_bytes": clip["weights_bytes"],
                          "texts": len(clip["texts"]), "images": len(clip["images"]),
                          "text_tokens": [len(x) for x in clip["text_ids"]]}
    report["seconds"]["clip_build_and_hf"] = round(time.time() - t, 2)
    t = time.time()
    if not args.skip_llm:
        llm = build_llm(work, hf_device, layers, steer_layer, args.alpha, args.new_tokens, args.seed)
        report["llm"] = {"parameters": llm["parameters"], "weights_bytes": llm["weights_bytes"],
                         "prompt_tokens": {k: len(r["ids"]) for k, r in llm["refs"].items()},
                         "steer_norm_after_alpha": llm["steer_norm"], "stop_ids": llm["stop_ids"]}
    report["seconds"]["llm_build_and_hf"] = round(time.time() - t, 2)
    if hf_device.startswith("cuda"):
        torch.cuda.empty_cache()  # leave the card to the engine

    engine = Engine(binary, args.device, args.engine_flag, args.timeout)
    checks: list[dict] = []
    t = time.time()
    if clip is not None:
        checks += run_clip(engine, clip, args.tol)
    report["seconds"]["engine_clip"] = round(time.time() - t, 2)
    t = time.time()
    if llm is not None:
        checks += run_llm(engine, llm, steer_layer, args.alpha, args.new_tokens, args.tol, hf_device)
        del llm["model"], llm["offset"]
    report["seconds"]["engine_llm"] = round(time.time() - t, 2)
    report["engine_calls"] = engine.calls
    report["checks"] = checks
    failed = [c["name"] for c in checks if not c.get("pass")]
    report["failed"] = failed
    report["pass"] = not failed and bool(checks)
    report["seconds"]["total"] = round(time.time() - t_start, 2)

    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if cleanup is not None:
        cleanup.cleanup()
    print(f"parity: {len(checks) - len(failed)}/{len(checks)} checks pass"
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
