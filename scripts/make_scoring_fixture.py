#!/usr/bin/env python3
"""Generate the zero-shot scoring fixture under tests/fixtures/scoring/.

The Rust test `tests/cli_score.rs` runs `glov-cuda score` on this little class-folder dataset with the tiny
quick_gelu CLIP of tests/fixtures/clip-tiny-quickgelu and compares its accuracies with the ones computed here by
HF transformers and PyTorch:

    dataset/<class>/*.png      12 seeded PNG images, 2 per class, 6 classes (folder names with underscores)
    templates.txt              5 templates with the {} slot
    expected.json              per template: top1, top5, mean_per_class (percent), and the ensemble of all
                               templates; also the smallest top-1 margin, to show no prediction is a near tie

Reference pipeline: PIL opens each image, CLIPImageProcessorPil preprocesses it, get_image_features; each template
is filled with each class name (underscores become spaces), tokenised by the Python `tokenizers` library from the
model's tokenizer.json (truncation at 77), padded, get_text_features; features L2-normalised; the prediction is the
argmax of cosine similarity; top-5 by torch.topk; the ensemble averages each class's normalised features over the
templates and normalises again.

Run from the repository root after scripts/make_clip_fixtures.py:  python3 scripts/make_scoring_fixture.py
"""

import json
import os
import shutil

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer
from transformers import CLIPModel

try:
    from transformers import CLIPImageProcessorPil as Processor
except ImportError:  # transformers 4
    from transformers import CLIPImageProcessor as Processor

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
MODEL = os.path.join(ROOT, "clip-tiny-quickgelu")
OUT = os.path.join(ROOT, "scoring")
CLASSES = ["golden_retriever", "tabby_cat", "fire_truck", "oak_tree", "sail_boat", "red_house"]
TEMPLATES = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "itap of a {}",
    "a close-up photo of the {}, taken at night!",
    "{}",
]


def make_images(rng: np.random.Generator) -> list[tuple[str, int]]:
    shutil.rmtree(os.path.join(OUT, "dataset"), ignore_errors=True)
    samples = []
    for label, name in enumerate(CLASSES):
        folder = os.path.join(OUT, "dataset", name)
        os.makedirs(folder)
        for i in range(2):
            h, w = int(rng.integers(24, 70)), int(rng.integers(24, 70))
            base = rng.uniform(0, 255, size=3)
            gradient = np.linspace(0, 1, w)[None, :, None] * rng.uniform(-120, 120, size=3)
            noise = rng.normal(0, 40, size=(h, w, 3))
            pixels = np.clip(base + gradient + noise, 0, 255).astype(np.uint8)
            path = os.path.join(folder, f"img{i}.png")
            Image.fromarray(pixels, "RGB").save(path)
            samples.append((path, label))
    return samples


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    os.makedirs(OUT, exist_ok=True)
    samples = make_images(rng)
    with open(os.path.join(OUT, "templates.txt"), "w") as f:
        f.write("\n".join(TEMPLATES) + "\n")

    model = CLIPModel.from_pretrained(MODEL, attn_implementation="eager").float().eval()
    processor = Processor.from_pretrained(MODEL)
    tokenizer = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    tokenizer.enable_truncation(max_length=77)
    pad = tokenizer.token_to_id("<|endoftext|>")

    with torch.no_grad():
        pixels = processor(images=[Image.open(p) for p, _ in samples], return_tensors="pt")["pixel_values"]
        images = model.get_image_features(pixel_values=pixels)
        images = getattr(images, "pooler_output", images)
        images = images / images.norm(dim=-1, keepdim=True)
        labels = torch.tensor([label for _, label in samples])
        names = [c.replace("_", " ") for c in CLASSES]

        def class_features(template: str) -> torch.Tensor:
            ids = [tokenizer.encode(template.replace("{}", n)).ids for n in names]
            longest = max(len(i) for i in ids)
            input_ids = torch.tensor([i + [pad] * (longest - len(i)) for i in ids])
            mask = torch.tensor([[1] * len(i) + [0] * (longest - len(i)) for i in ids])
            feats = model.get_text_features(input_ids=input_ids, attention_mask=mask)
            feats = getattr(feats, "pooler_output", feats)
            return feats / feats.norm(dim=-1, keepdim=True)

        margins = []

        def accuracy(classes: torch.Tensor) -> dict:
            sims = images @ classes.T
            top = sims.topk(2, dim=-1).values
            margins.append(float((top[:, 0] - top[:, 1]).min()))
            pred = sims.argmax(dim=-1)
            top5 = (sims.topk(5, dim=-1).indices == labels[:, None]).any(dim=-1)
            correct = pred == labels
            per_class = [float(correct[labels == c].float().mean()) for c in range(len(CLASSES))]
            return {
                "top1": 100.0 * float(correct.float().mean()),
                "top5": 100.0 * float(top5.float().mean()),
                "mean_per_class": 100.0 * sum(per_class) / len(per_class),
            }

        features = [class_features(t) for t in TEMPLATES]
        per_template = [dict(template=t, **accuracy(f)) for t, f in zip(TEMPLATES, features)]
        ensemble = torch.stack(features).mean(dim=0)
        ensemble = ensemble / ensemble.norm(dim=-1, keepdim=True)
        result = {
            "classes": names,
            "templates": per_template,
            "ensemble": accuracy(ensemble),
            "min_top1_margin": min(margins),
        }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
