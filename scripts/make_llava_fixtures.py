#!/usr/bin/env python3
"""Generate a tiny random LLaVA-OneVision and what HF transformers computes with it.

The Rust tests (`tests/llava_golden.rs`) load the model directories as glov-cuda does and compare with:

    tests/fixtures/llava-tiny/             LlavaOnevisionForConditionalGeneration in the newer layout
                                           (model.vision_tower.*, model.multi_modal_projector.*,
                                           model.language_model.*, lm_head.*, model.image_newline), with
                                           preprocessor_config.json (the slow/PIL image processor),
                                           tokenizer.json (the tiny Qwen2 fixture's, plus `<image>`)
    tests/fixtures/llava-tiny-hub/         the same weights in the hub's layout (vision_tower.vision_model.*,
                                           multi_modal_projector.*, language_model.model.*,
                                           language_model.lm_head.*, image_newline); the script checks that
                                           transformers loads both into the same model
    tests/fixtures/llava-tiny/images/      PNG images of odd sizes and aspect ratios
    tests/fixtures/llava-tiny/golden.json           per image: its size, the best resolution chosen, the number of
                                                    tiles and of packed image features, and the packed features'
                                                    first and last rows
                                                    and, for the question QUESTION about images 0, 2 and 5: the
                                                    prompt's ids (the conversation of the reference, the image token
                                                    repeated once per feature, from the tokenizer.json file), the
                                                    greedy answer's ids (12 new tokens at most, ending at <|im_end|>)
                                                    and each answer step's margin between its two best logits
    tests/fixtures/llava-tiny/golden.safetensors    per image: `pixel_values_{i}` [tiles, 3, 32, 32] (the
                                                    processor's), `features_{i}` [n, 48] (the packed features
                                                    that replace the image tokens: projector output, anyres
                                                    packing, unpadding, the anyres_max downscale, image_newline);
                                                    `last_logits_{i}` [vocab] of the prompt's last position

The model is small enough for any CPU: SigLIP with 32-pixel tiles of 8-pixel patches (16 tokens a tile), 2 layers,
tanh GELU; a Qwen2 language model of hidden 48; grid pinpoints from 32x32 to 96x96, and `anyres_max_2`, so that
most images are unpadded and several are downscaled (bilinearly) after packing.

Run from the repository root after scripts/make_llm_fixtures.py:  python3 scripts/make_llava_fixtures.py
"""

import json
import os
import shutil

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Tokenizer
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    Qwen2Config,
    SiglipVisionConfig,
)

try:
    from transformers import LlavaOnevisionImageProcessorPil as Processor
except ImportError:  # transformers 4
    from transformers import LlavaOnevisionImageProcessor as Processor

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(REPO, "tests", "fixtures")
OUT = os.path.join(FIXTURES, "llava-tiny")
HUB = os.path.join(FIXTURES, "llava-tiny-hub")
QWEN = os.path.join(FIXTURES, "llm-tiny-qwen2")

TILE = 32
PINPOINTS = [[32, 32], [32, 64], [64, 32], [64, 64], [32, 96], [96, 32], [64, 96], [96, 64], [96, 96]]
# (width, height): wide, tall, square, tiny, exact tile, large square, odd.
SIZES = [(50, 37), (23, 90), (120, 64), (7, 5), (32, 32), (100, 100), (61, 33)]
QUESTION = "Describe the category present in this image briefly and also identify the name of the category present?"
CONVERSATION = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n{}<|im_end|>\n"
                "<|im_start|>assistant\n")
ANSWERED = [0, 2, 5]
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def tokenizer():
    tok = Tokenizer.from_file(os.path.join(QWEN, "tokenizer.json"))
    tok.add_special_tokens([AddedToken("<image>", special=True, normalized=False)])
    return tok


def images():
    rng = np.random.default_rng(7)
    out = []
    for i, (w, h) in enumerate(SIZES):
        # Smooth gradients plus noise, so that resampling has something to do.
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x + y) * 127 / max(w + h - 2, 1)], -1)
        noisy = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(noisy, "RGB"))
    return out


def main():
    torch.manual_seed(0)
    tok = tokenizer()
    image_token = tok.token_to_id("<image>")
    qwen = json.load(open(os.path.join(QWEN, "config.json")))
    text = Qwen2Config(
        vocab_size=max(qwen["vocab_size"], image_token + 1),
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        eos_token_id=qwen["eos_token_id"],
        pad_token_id=qwen["pad_token_id"],
    )
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=TILE,
        patch_size=8,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
        vision_use_head=False,
    )
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token,
        image_grid_pinpoints=PINPOINTS,
        vision_aspect_ratio="anyres_max_2",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )
    model = LlavaOnevisionForConditionalGeneration(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.6)
    model = model.float().eval()

    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT, safe_serialization=True)
    tok.save(os.path.join(OUT, "tokenizer.json"))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>",
                   "pad_token": "<|endoftext|>"}, f, indent=2)
    processor = Processor(size={"height": TILE, "width": TILE}, image_grid_pinpoints=PINPOINTS,
                          image_mean=MEAN, image_std=STD)
    processor.save_pretrained(OUT)

    # transformers 5 saves the older names without SigLIP's `vision_model.`; write the two layouts a user meets.
    saved = load_file(os.path.join(OUT, "model.safetensors"))
    shutil.rmtree(HUB, ignore_errors=True)
    shutil.copytree(OUT, HUB)
    layouts = {
        OUT: [("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector."),
              ("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
              ("image_newline", "model.image_newline")],
        HUB: [("vision_tower.", "vision_tower.vision_model.")],
    }
    for directory, renames in layouts.items():
        renamed = {}
        for name, t in saved.items():
            for old, new in renames:
                if name.startswith(old):
                    name = new + name[len(old):]
                    break
            renamed[name] = t.contiguous()
        os.remove(os.path.join(directory, "model.safetensors"))
        save_file(renamed, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    # Both load back into the same model.
    for directory in (OUT, HUB):
        again = LlavaOnevisionForConditionalGeneration.from_pretrained(directory).float().eval()
        for (n, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
            assert torch.equal(a, b), (directory, n)

    os.makedirs(os.path.join(OUT, "images"))
    golden = {"images": []}
    arrays = {}
    for i, img in enumerate(images()):
        path = os.path.join(OUT, "images", f"image{i}.png")
        img.save(path)
        img = Image.open(path).convert("RGB")
        batch = processor(images=[img], return_tensors="pt")
        pixels = batch["pixel_values"][0]
        sizes = batch["image_sizes"]
        with torch.no_grad():
            out = model.model.get_image_features(pixel_values=batch["pixel_values"], image_sizes=sizes,
                                                 batch_num_images=batch["batch_num_images"])
            features = out.pooler_output[0]
        from transformers.image_processing_utils import select_best_resolution
        best = select_best_resolution([img.height, img.width], PINPOINTS)
        arrays[f"pixel_values_{i}"] = pixels.contiguous()
        arrays[f"features_{i}"] = features.contiguous()
        entry = {
            "file": f"images/image{i}.png",
            "width": img.width,
            "height": img.height,
            "best_resolution": list(best),
            "tiles": int(pixels.shape[0]),
            "features": int(features.shape[0]),
        }
        if i in ANSWERED:
            ids = tok.encode(CONVERSATION.format(QUESTION), add_special_tokens=False).ids
            at = ids.index(image_token)
            ids = ids[:at] + [image_token] * int(features.shape[0]) + ids[at + 1:]
            input_ids = torch.tensor([ids])
            with torch.no_grad():
                logits = model(input_ids=input_ids, pixel_values=batch["pixel_values"], image_sizes=sizes,
                               batch_num_images=batch["batch_num_images"]).logits[0, -1]
                generated = model.generate(input_ids=input_ids, pixel_values=batch["pixel_values"],
                                           image_sizes=sizes, batch_num_images=batch["batch_num_images"],
                                           max_new_tokens=12, do_sample=False, eos_token_id=[tok.token_to_id("<|im_end|>")],
                                           pad_token_id=text.pad_token_id, output_scores=True,
                                           return_dict_in_generate=True)
            answer = generated.sequences[0, len(ids):].tolist()
            margins = [float(torch.topk(s[0], 2).values.diff().abs()) for s in generated.scores]
            arrays[f"last_logits_{i}"] = logits.contiguous()
            entry.update({"question": QUESTION, "input_ids": ids, "answer_ids": answer, "margins": margins})
        golden["images"].append(entry)
    save_file(arrays, os.path.join(OUT, "golden.safetensors"))
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
