#!/usr/bin/env python3
"""Generate the golden CLIP fixtures under tests/fixtures/.

The Rust golden tests compare this crate's tokenizer, image preprocessing and
CLIP text/vision encoders against Hugging Face `transformers` / `tokenizers`.
This script produces everything those tests read:

tests/fixtures/tokenizer/
    openai-clip-tokenizer.json.gz  HF tokenizer.json for the real OpenAI CLIP BPE
                                   vocabulary (49408 tokens), gzipped.
    cases.json                     {"strings", "openai", "tiny"}: hard strings and
                                   their reference ids (Python `tokenizers`,
                                   truncation at 77, special tokens added).
tests/fixtures/images/             small seeded images in several PIL modes.
tests/fixtures/clip-tiny-quickgelu/
    config.json, model.safetensors (float32, one file), tokenizer.json (tiny
    vocabulary), preprocessor_config.json, golden.json, golden.safetensors.
    quick_gelu towers, legacy eos_token_id == 2 (pooling at the argmax id).
tests/fixtures/clip-tiny-gelu/
    config.json, model-0000x-of-0000y.safetensors + model.safetensors.index.json
    (bfloat16, sharded), tokenizer.json, preprocessor_config.json, golden.json,
    golden.safetensors. Exact-erf gelu, pooling at the first end token.

golden.json:        {"texts", "input_ids", "images", "logit_scale"}
golden.safetensors: text_features [T, P], pixel_values [N, 3, S, S],
                    image_features [N, P], logit_scale [1]   (all float32)

The models are tiny and randomly initialised (seeded), with every parameter
re-drawn so that no tensor is zero or an identity, so that a mistake anywhere in
the forward pass changes the outputs.

Run from the repository root:  python3 scripts/make_clip_fixtures.py
Requires: torch, transformers (5.x), tokenizers, safetensors, pillow, numpy, and
the `open_clip_torch` package for its bpe_simple_vocab_16e6.txt.gz (only the
data file is read; open_clip itself is not imported).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import struct
import zlib

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

import transformers
from transformers import CLIPConfig, CLIPModel

try:  # transformers 5 names the PIL backend explicitly
    from transformers import CLIPImageProcessorPil as PilClipImageProcessor
except ImportError:  # older releases: the default processor is the PIL one
    from transformers import CLIPImageProcessor as PilClipImageProcessor

try:
    from transformers import CLIPTokenizerFast as HfClipTokenizer
except ImportError:  # transformers 5: a single tokenizers-backed class
    from transformers import CLIPTokenizer as HfClipTokenizer


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TOK_DIR = os.path.join(FIXTURES, "tokenizer")
IMG_DIR = os.path.join(FIXTURES, "images")

MAX_LEN = 77
SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
OPENAI_MERGES = 49152 - 256 - 2  # number of merges used by OpenAI CLIP
TINY_MERGES = 600
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# --------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------

def byte_to_unicode_table() -> list[tuple[int, str]]:
    """GPT-2 / CLIP reversible byte -> printable unicode mapping, in vocab order.

    Printable bytes map to themselves and come first (ascending); the remaining
    bytes map to U+0100 onwards, in ascending byte order, and follow.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = [(b, chr(b)) for b in printable]
    extra = 0
    for b in range(256):
        if b not in printable:
            table.append((b, chr(256 + extra)))
            extra += 1
    return table


def read_bpe_merges() -> list[str]:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        sys.exit("open_clip_torch is not installed (needed for bpe_simple_vocab_16e6.txt.gz)")
    path = os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : OPENAI_MERGES + 1]
    assert len(merges) == OPENAI_MERGES
    return merges


def build_tokenizer_json(merges: list[str]) -> str:
    """Build a HF CLIP tokenizer.json (text) from a list of 'a b' merge lines."""
    units = [u for _, u in byte_to_unicode_table()]
    tokens = units + [u + "</w>" for u in units]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [SOT, EOT]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate vocabulary entries"

    with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dst:
        with open(os.path.join(src, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        with open(os.path.join(src, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        tok = HfClipTokenizer.from_pretrained(
            src,
            bos_token=SOT,
            eos_token=EOT,
            pad_token=EOT,
            unk_token=EOT,
            model_max_length=MAX_LEN,
        )
        tok.save_pretrained(dst)
        with open(os.path.join(dst, "tokenizer.json"), encoding="utf-8") as f:
            text = f.read()

    loaded = Tokenizer.from_str(text)
    assert loaded.get_vocab_size() == len(tokens), (loaded.get_vocab_size(), len(tokens))
    assert loaded.token_to_id(SOT) == len(tokens) - 2
    assert loaded.token_to_id(EOT) == len(tokens) - 1
    return text


def reference_tokenizer(text: str) -> Tokenizer:
    tok = Tokenizer.from_str(text)
    tok.enable_truncation(max_length=MAX_LEN)
    return tok


def encode_all(tok: Tokenizer, strings: list[str]) -> list[list[int]]:
    sot, eot = tok.token_to_id(SOT), tok.token_to_id(EOT)
    out = []
    for s in strings:
        ids = tok.encode(s).ids
        assert ids[0] == sot and ids[-1] == eot and len(ids) <= MAX_LEN, (s, ids)
        out.append(ids)
    return out


LONG_WORDS = " ".join(
    "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches".split()
    * 9
)
assert len(LONG_WORDS.split()) >= 120

TOKENIZER_STRINGS = [
    "a photo of a cat.",
    "A Photo Of A CAT",
    "Hello, World! How are you?",
    "café naïve Ångström façade",
    "cafe\u0301 nai\u0308ve \u212bngstro\u0308m",          # decomposed / non-NFC forms
    "Z\u0351\u0352a\u0353l\u0354g\u0355o\u0356 text",         # combining marks
    "日本語のテキスト、中文字符和한국어",
    "I ❤️ my 🐈‍⬛ and 👍🏽 🇫🇷!",
    "مرحبا بالعالم",
    "ΟΔΟΣ Σίσυφος İstanbul straße",                  # final sigma, dotted I, sharp s
    "!!!???...---***;;;",
    "wait... what?!? (really) [yes] {no} <maybe>",
    "it's the cat's toy, don't, we're, they've, I'm, you'll, he'd",
    "IT'S DON'T WE'RE",
    "1234567 3.14 1,000 -42 2nd 10x",
    "   leading and trailing spaces   ",
    "multiple     spaces    between   words",
    "tabs\tand\nnewlines\r\nmixed \t \n here",
    "non\u00a0breaking\u3000ideographic\u2009thin spaces",
    "&amp; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;",
    "a photo of a <|endoftext|> cat",
    "<|startoftext|>already wrapped<|endoftext|>",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ ½ x² ﬁ ligature",
    "snake_case-and-kebab-case.and.dots/and/slashes\\back",
    "email@example.com https://example.com/path?q=1&r=2#frag",
    "a",
    "",
    " ",
    "\t\n",
    LONG_WORDS,
    ("abcdefghij" * 30),                                 # 300 characters, no spaces
    ("ünïcödé" * 40),                                    # long, accented, no spaces
    "a photo of a dog" + "!" * 200,
]


def make_tokenizers() -> str:
    """Write the tokenizer fixtures; return the tiny tokenizer.json text."""
    os.makedirs(TOK_DIR, exist_ok=True)
    merges = read_bpe_merges()

    openai_text = build_tokenizer_json(merges)
    tiny_text = build_tokenizer_json(merges[:TINY_MERGES])

    openai_tok = reference_tokenizer(openai_text)
    tiny_tok = reference_tokenizer(tiny_text)
    assert openai_tok.get_vocab_size() == 49408
    assert tiny_tok.get_vocab_size() == 512 + TINY_MERGES + 2

    cat = openai_tok.encode("a photo of a cat.").ids
    assert cat == [49406, 320, 1125, 539, 320, 2368, 269, 49407], cat

    openai_ids = encode_all(openai_tok, TOKENIZER_STRINGS)
    tiny_ids = encode_all(tiny_tok, TOKENIZER_STRINGS)
    # the over-long strings must actually be truncated
    assert sum(len(ids) == MAX_LEN for ids in openai_ids) >= 2
    assert sum(len(ids) == MAX_LEN for ids in tiny_ids) >= 2

    gz = gzip.compress(openai_text.encode("utf-8"), compresslevel=9, mtime=0)
    with open(os.path.join(TOK_DIR, "openai-clip-tokenizer.json.gz"), "wb") as f:
        f.write(gz)
    with open(os.path.join(TOK_DIR, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"strings": TOKENIZER_STRINGS, "openai": openai_ids, "tiny": tiny_ids},
            f,
            ensure_ascii=False,
            indent=1,
        )
        f.write("\n")
    return tiny_text


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------

def smooth_pattern(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    """Smooth random field in [0, 1] plus a little per-pixel noise, shape (h, w, c)."""
    y = np.linspace(0.0, 1.0, h)[:, None]
    x = np.linspace(0.0, 1.0, w)[None, :]
    out = np.empty((h, w, channels))
    for c in range(channels):
        field = np.zeros((h, w))
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 4.0, size=2)
            px, py = rng.uniform(0, 2 * math.pi, size=2)
            field += rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * fx * x + px) * np.cos(
                2 * math.pi * fy * y + py
            )
        field += rng.normal(0.0, 0.15, size=(h, w))
        field = (field - field.min()) / (field.max() - field.min())
        out[..., c] = field
    return out


def to_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)


def write_png_rgb16(path: str, rgb16: np.ndarray) -> None:
    """Minimal PNG encoder for 16-bit RGB (PIL cannot write that mode)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[r].astype(">u2").tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)  # bit depth 16, colour type 2
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_images() -> dict[str, str]:
    """Write the golden images; return {file name: description}."""
    os.makedirs(IMG_DIR, exist_ok=True)
    rng = np.random.default_rng(1234)
    made: dict[str, str] = {}

    # RGB, 8-bit
    Image.fromarray(to_u8(smooth_pattern(rng, 43, 61, 3)), "RGB").save(os.path.join(IMG_DIR, "rgb.png"))
    made["rgb.png"] = "RGB 8-bit PNG 61x43"

    # JPEG, quality 90, 4:4:4 chroma (no chroma up-sampling differences between decoders)
    Image.fromarray(to_u8(smooth_pattern(rng, 70, 90, 3)), "RGB").save(
        os.path.join(IMG_DIR, "photo.jpg"), quality=90, subsampling=0
    )
    made["photo.jpg"] = "RGB JPEG q90 4:4:4 90x70"

    # greyscale L
    Image.fromarray(to_u8(smooth_pattern(rng, 37, 29, 1)[..., 0]), "L").save(os.path.join(IMG_DIR, "grey.png"))
    made["grey.png"] = "L 8-bit PNG 29x37"

    # palette P (adaptive 32-colour palette, no transparency)
    rgb = Image.fromarray(to_u8(smooth_pattern(rng, 33, 50, 3)), "RGB")
    pal = rgb.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    assert pal.mode == "P" and "transparency" not in pal.info
    pal.save(os.path.join(IMG_DIR, "palette.png"))
    made["palette.png"] = "P (32-colour palette) PNG 50x33"

    # RGBA with varying alpha (including fully transparent and fully opaque pixels)
    rgba = to_u8(smooth_pattern(rng, 41, 53, 4))
    rgba[:4, :, 3] = 0
    rgba[-4:, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(os.path.join(IMG_DIR, "rgba.png"))
    made["rgba.png"] = "RGBA PNG 53x41, alpha varies 0..255"

    # 16-bit RGB: PIL has no writable 16-bit RGB mode, so encode the PNG directly.
    rgb16 = np.clip(np.round(smooth_pattern(rng, 31, 47, 3) * 65535.0), 0, 65535).astype(np.uint16)
    write_png_rgb16(os.path.join(IMG_DIR, "rgb16.png"), rgb16)
    check = Image.open(os.path.join(IMG_DIR, "rgb16.png"))
    assert check.size == (47, 31)
    made["rgb16.png"] = f"16-bit RGB PNG 47x31 (opens in PIL as mode {check.mode})"

    # 16-bit greyscale I;16
    g16 = np.clip(np.round(smooth_pattern(rng, 26, 39, 1)[..., 0] * 65535.0), 0, 65535).astype(np.uint16)
    im16 = Image.fromarray(g16)
    assert im16.mode == "I;16", im16.mode
    im16.save(os.path.join(IMG_DIR, "grey16.png"))
    made["grey16.png"] = "I;16 greyscale PNG 39x26"

    # tall RGB
    Image.fromarray(to_u8(smooth_pattern(rng, 88, 23, 3)), "RGB").save(os.path.join(IMG_DIR, "tall.png"))
    made["tall.png"] = "RGB PNG 23x88 (tall)"

    return made


# Images used for the model goldens. Left out:
#   grey16.png - PIL's I;16 -> RGB conversion clamps every value above 255 to 255
#                (it does not scale), so the "HF reference" is mostly white; not a
#                meaningful target.
#   rgb16.png  - PIL opens 16-bit RGB PNGs as 8-bit RGB by keeping the high byte of
#                each sample, which differs from a rounding u16 -> u8 conversion;
#                kept as a decoder fixture only.
GOLDEN_IMAGES = ["rgb.png", "photo.jpg", "grey.png", "palette.png", "rgba.png", "tall.png"]


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

GOLDEN_TEXTS = [
    "a photo of a cat.",
    "a photo of a dog.",
    "A blurry photo of a Golden Retriever, taken at night!",
    "",
    "x",
    "itap of a {car}?!",
    "the café's naïve Ångström — 1,234 items",
    "a photo of a <|endoftext|> cat",
    "   spaced    out   ",
    LONG_WORDS,
]


def reinit_(model: torch.nn.Module, seed: int) -> None:
    """Re-draw every parameter so that none is trivial (zero bias, unit norm, ...)."""
    gen = torch.Generator().manual_seed(seed)

    def normal_(p: torch.Tensor, mean: float, std: float) -> None:
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen) * std + mean)

    handled: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            normal_(module.weight, 1.0, 0.1)
            normal_(module.bias, 0.0, 0.1)
            handled.update({id(module.weight), id(module.bias)})
    for name, p in model.named_parameters():
        if id(p) in handled:
            continue
        if name == "logit_scale":
            with torch.no_grad():
                p.fill_(math.log(1 / 0.07) + 0.1)
        elif name.endswith("bias"):
            normal_(p, 0.0, 0.1)
        elif "embedding" in name and p.dim() == 2 and "patch" not in name:
            normal_(p, 0.0, 0.2)  # token / position embeddings
        elif name.endswith("class_embedding"):
            normal_(p, 0.0, 0.2)
        else:
            fan_in = p[0].numel()
            normal_(p, 0.0, min(0.2, max(0.02, 1.0 / math.sqrt(fan_in))))


def build_model(spec: dict) -> CLIPModel:
    text = dict(
        vocab_size=512 + TINY_MERGES + 2,
        max_position_embeddings=MAX_LEN,
        hidden_act=spec["act"],
        layer_norm_eps=1e-5,
        **spec["text"],
    )
    vision = dict(num_channels=3, hidden_act=spec["act"], layer_norm_eps=1e-5, **spec["vision"])
    config = CLIPConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=spec["projection_dim"],
        logit_scale_init_value=math.log(1 / 0.07) + 0.1,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(spec["seed"])
    model = CLIPModel(config).to(torch.float32).eval()
    reinit_(model, spec["seed"])
    return model


def load_model(path: str) -> CLIPModel:
    try:
        model = CLIPModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:  # older transformers
        model = CLIPModel.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    return model.to(torch.float32).eval()


def projected(out) -> torch.Tensor:
    """get_*_features returns a tensor in 4.x and a model output (pooler = projection) in 5.x."""
    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output


def write_preprocessor(model_dir: str, image_size: int) -> PilClipImageProcessor:
    proc = PilClipImageProcessor(
        do_resize=True,
        size={"shortest_edge": image_size},
        resample=3,
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )
    proc.save_pretrained(model_dir)
    path = os.path.join(model_dir, "preprocessor_config.json")
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    expected = {
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "do_normalize": True,
        "image_mean": OPENAI_CLIP_MEAN,
        "image_std": OPENAI_CLIP_STD,
        "do_convert_rgb": True,
    }
    for k, v in expected.items():
        assert saved.get(k) == v, (k, saved.get(k), v)
    assert abs(saved["rescale_factor"] - 1 / 255) < 1e-12
    return proc


def golden(model: CLIPModel, model_dir: str, tiny_text: str, proc, image_size: int) -> None:
    tok = reference_tokenizer(tiny_text)
    ids = encode_all(tok, GOLDEN_TEXTS)
    assert any(len(x) == MAX_LEN for x in ids)
    pad = tok.token_to_id(EOT)
    longest = max(len(x) for x in ids)
    input_ids = torch.tensor([x + [pad] * (longest - len(x)) for x in ids], dtype=torch.long)
    mask = torch.tensor([[1] * len(x) + [0] * (longest - len(x)) for x in ids], dtype=torch.long)

    images = [Image.open(os.path.join(IMG_DIR, name)) for name in GOLDEN_IMAGES]
    pixel_values = proc(images=images, return_tensors="pt")["pixel_values"].to(torch.float32)
    assert tuple(pixel_values.shape) == (len(images), 3, image_size, image_size)

    with torch.no_grad():
        text_features = projected(model.get_text_features(input_ids=input_ids, attention_mask=mask))
        image_features = projected(model.get_image_features(pixel_values=pixel_values))
        full = model(input_ids=input_ids, attention_mask=mask, pixel_values=pixel_values)
        # the full forward normalises its embeddings; the projections must agree
        tn = text_features / text_features.norm(dim=-1, keepdim=True)
        im = image_features / image_features.norm(dim=-1, keepdim=True)
        assert torch.allclose(tn, full.text_embeds, atol=1e-6)
        assert torch.allclose(im, full.image_embeds, atol=1e-6)
        # padding must not matter: each text alone gives the same features
        for i, x in enumerate(ids):
            alone = projected(model.get_text_features(input_ids=torch.tensor([x])))
            assert torch.allclose(alone[0], text_features[i], atol=1e-5), i
        logit_scale = model.logit_scale.detach().to(torch.float32).reshape(1)

    # not degenerate: distinct texts/images give clearly distinct features
    for feats in (tn, im):
        sims = feats @ feats.T
        off = sims[~torch.eye(len(sims), dtype=torch.bool)]
        assert off.max() < 0.999, f"features nearly identical: {off.max():.6f}"

    save_file(
        {
            "text_features": text_features.contiguous(),
            "pixel_values": pixel_values.contiguous(),
            "image_features": image_features.contiguous(),
            "logit_scale": logit_scale.contiguous(),
        },
        os.path.join(model_dir, "golden.safetensors"),
    )
    with open(os.path.join(model_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "texts": GOLDEN_TEXTS,
                "input_ids": ids,
                "images": GOLDEN_IMAGES,
                "logit_scale": float(logit_scale.item()),
            },
            f,
            ensure_ascii=False,
            indent=1,
        )
        f.write("\n")


MODELS = [
    dict(
        name="clip-tiny-quickgelu",
        seed=20240601,
        act="quick_gelu",
        projection_dim=24,
        vision=dict(hidden_size=48, intermediate_size=72, num_attention_heads=3, num_hidden_layers=2,
                    patch_size=6, image_size=30),
        # legacy setting: eos_token_id == 2 makes HF pool at the argmax id
        text=dict(hidden_size=40, intermediate_size=60, num_attention_heads=5, num_hidden_layers=2,
                  bos_token_id=49406, eos_token_id=2, pad_token_id=1),
        dtype=torch.float32,
        shard=None,
    ),
    dict(
        name="clip-tiny-gelu",
        seed=20240602,
        act="gelu",
        projection_dim=20,
        vision=dict(hidden_size=36, intermediate_size=52, num_attention_heads=4, num_hidden_layers=3,
                    patch_size=7, image_size=35),
        # new setting: pooling at the first real end token
        text=dict(hidden_size=52, intermediate_size=76, num_attention_heads=4, num_hidden_layers=3,
                  bos_token_id=512 + TINY_MERGES, eos_token_id=512 + TINY_MERGES + 1,
                  pad_token_id=512 + TINY_MERGES + 1),
        dtype=torch.bfloat16,
        shard="150KB",
    ),
]


def make_model(spec: dict, tiny_text: str) -> None:
    model_dir = os.path.join(FIXTURES, spec["name"])
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(model_dir)

    model = build_model(spec)
    image_size = spec["vision"]["image_size"]

    if spec["dtype"] == torch.float32:
        model.save_pretrained(model_dir, safe_serialization=True, max_shard_size="100GB")
        assert os.path.exists(os.path.join(model_dir, "model.safetensors"))
    else:
        model.to(spec["dtype"]).save_pretrained(
            model_dir, safe_serialization=True, max_shard_size=spec["shard"]
        )
        shards = sorted(f for f in os.listdir(model_dir) if f.startswith("model-") and f.endswith(".safetensors"))
        assert 2 <= len(shards) <= 3, shards
        assert os.path.exists(os.path.join(model_dir, "model.safetensors.index.json"))
        for s in shards:
            assert all(t.dtype == torch.bfloat16 for t in load_file(os.path.join(model_dir, s)).values())

    # reference outputs always come from the stored weights, upcast to float32
    reloaded = load_model(model_dir)
    assert reloaded.config.text_config.eos_token_id == spec["text"]["eos_token_id"]
    assert reloaded.config.text_config.hidden_act == spec["act"]
    if spec["dtype"] == torch.float32:
        for (n, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
            assert torch.equal(a, b), n

    with open(os.path.join(model_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tiny_text)
    proc = write_preprocessor(model_dir, image_size)
    golden(reloaded, model_dir, tiny_text, proc, image_size)


# --------------------------------------------------------------------------

def summary() -> None:
    total = 0
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for dirpath, _, files in sorted(os.walk(FIXTURES)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            size = os.path.getsize(path)
            total += size
            print(f"{size:>10,}  {os.path.relpath(path, ROOT)}")
    print(f"{total:>10,}  total")
    for spec in MODELS:
        path = os.path.join(FIXTURES, spec["name"], "golden.safetensors")
        for k, v in load_file(path).items():
            print(f"  {spec['name']}/golden.safetensors  {k:15s} {tuple(v.shape)} {v.dtype}")


def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    tiny_text = make_tokenizers()
    make_images()
    for spec in MODELS:
        make_model(spec, tiny_text)
    summary()


if __name__ == "__main__":
    main()
