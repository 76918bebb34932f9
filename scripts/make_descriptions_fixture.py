#!/usr/bin/env python3
"""Generate the class-description and template-set fixtures under tests/fixtures/scoring/.

The Rust test `tests/cli_score_descriptions.rs` runs `glov-cuda score --descriptions` (both aggregations) and
`score --template-set imagenet-7` on the dataset of scripts/make_scoring_fixture.py with the tiny quick_gelu CLIP,
and compares the accuracies with the ones computed here by HF transformers and PyTorch:

    descriptions.json               sentences per class (1 to 4; one longer than CLIP's 77 tokens, truncated),
                                    keyed by the class names with spaces, as CuPL publishes them
    expected_descriptions.json      top1, top5, mean_per_class (percent) for:
                                    "embedding": CuPL's class embedding, the normalised mean of the normalised
                                                 sentence features;
                                    "score":     DCLIP's mean over a class's sentences of the cosine similarities;
                                    "imagenet-7": each of OpenAI's 7 selected ImageNet templates (read from
                                                 data/template-sets/imagenet-7.txt) and their ensemble;
                                    and the smallest top-1 margin of each, to show no prediction is a near tie

The pipeline is make_scoring_fixture.py's: PIL and CLIPImageProcessorPil for the images, the Python `tokenizers`
library on the model's tokenizer.json (truncation at 77, keeping the end token as CLIP's tokenizer does) for the
texts, get_image_features and get_text_features, L2 normalisation, argmax of the similarity.

Run from the repository root after scripts/make_scoring_fixture.py:  python3 scripts/make_descriptions_fixture.py
"""

import json
import os

import torch
from PIL import Image
from tokenizers import Tokenizer
from transformers import CLIPModel

try:
    from transformers import CLIPImageProcessorPil as Processor
except ImportError:  # transformers 4
    from transformers import CLIPImageProcessor as Processor

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ROOT = os.path.join(REPO, "tests", "fixtures")
MODEL = os.path.join(ROOT, "clip-tiny-quickgelu")
OUT = os.path.join(ROOT, "scoring")
CLASSES = ["golden_retriever", "tabby_cat", "fire_truck", "oak_tree", "sail_boat", "red_house"]
LONG = "a very long description that goes on " + "and on " * 40 + "about the {}."
# Chosen (from a pool of phrases, drawn with a seed) so that the two aggregations disagree on top-1 with no near tie:
# a test that swapped them would fail.
DESCRIPTIONS = {
    "golden retriever": ["A photo of a golden retriever.", "It is golden retriever.", LONG.format("golden retriever")],
    "tabby cat": ["A tabby cat in the wild."],
    "fire truck": ["A blurry picture.", "A small fire truck.", "Something red.", "The fire truck is large and heavy."],
    "oak tree": ["oak tree", "An old oak tree near a road.", "a ladder and a hose.", "green leaves."],
    "sail boat": ["It is sail boat.", "A sail boat in the wild."],
    "red house": ["A red house with a long tail.", "Something red.", "An old red house near a road."],
}

def main() -> None:
    model = CLIPModel.from_pretrained(MODEL, attn_implementation="eager").float().eval()
    processor = Processor.from_pretrained(MODEL)
    tokenizer = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    end = tokenizer.token_to_id("<|endoftext|>")
    names = [c.replace("_", " ") for c in CLASSES]
    samples = []
    for label, folder in enumerate(CLASSES):
        for name in sorted(os.listdir(os.path.join(OUT, "dataset", folder))):
            samples.append((os.path.join(OUT, "dataset", folder, name), label))

    def encode(text: str) -> list[int]:
        ids = tokenizer.encode(text).ids
        return ids if len(ids) <= 77 else ids[:76] + [end]

    with torch.no_grad():
        pixels = processor(images=[Image.open(p) for p, _ in samples], return_tensors="pt")["pixel_values"]
        images = model.get_image_features(pixel_values=pixels)
        images = getattr(images, "pooler_output", images)
        images = images / images.norm(dim=-1, keepdim=True)
        labels = torch.tensor([label for _, label in samples])

        def text_features(texts: list[str]) -> torch.Tensor:
            ids = [encode(t) for t in texts]
            longest = max(len(i) for i in ids)
            input_ids = torch.tensor([i + [end] * (longest - len(i)) for i in ids])
            mask = torch.tensor([[1] * len(i) + [0] * (longest - len(i)) for i in ids])
            feats = model.get_text_features(input_ids=input_ids, attention_mask=mask)
            feats = getattr(feats, "pooler_output", feats)
            return feats / feats.norm(dim=-1, keepdim=True)

        margins = {}

        def accuracy(sims: torch.Tensor, what: str) -> dict:
            top = sims.topk(2, dim=-1).values
            margins[what] = min(margins.get(what, 1.0), float((top[:, 0] - top[:, 1]).min()))
            pred = sims.argmax(dim=-1)
            top5 = (sims.topk(5, dim=-1).indices == labels[:, None]).any(dim=-1)
            correct = pred == labels
            per_class = [float(correct[labels == c].float().mean()) for c in range(len(CLASSES))]
            return {
                "top1": 100.0 * float(correct.float().mean()),
                "top5": 100.0 * float(top5.float().mean()),
                "mean_per_class": 100.0 * sum(per_class) / len(per_class),
            }

        per_class = [text_features(DESCRIPTIONS[n]) for n in names]
        embedding = torch.stack([f.mean(dim=0) for f in per_class])
        embedding = embedding / embedding.norm(dim=-1, keepdim=True)
        score = torch.stack([(images @ f.T).mean(dim=-1) for f in per_class], dim=-1)

        with open(os.path.join(REPO, "data", "template-sets", "imagenet-7.txt")) as f:
            templates = [line.rstrip("\n") for line in f]
        features = [text_features([t.replace("{}", n) for n in names]) for t in templates]
        ensemble = torch.stack(features).mean(dim=0)
        ensemble = ensemble / ensemble.norm(dim=-1, keepdim=True)
        result = {
            "embedding": accuracy(images @ embedding.T, "embedding"),
            "score": accuracy(score, "score"),
            "imagenet-7": {
                "templates": [dict(template=t, **accuracy(images @ f.T, "imagenet-7")) for t, f in zip(templates, features)],
                "ensemble": accuracy(images @ ensemble.T, "imagenet-7"),
            },
        }
        result["min_top1_margin"] = margins
    assert result["embedding"]["top1"] != result["score"]["top1"], "the aggregations agree: pick other sentences"
    assert min(margins.values()) > 1e-4, margins
    with open(os.path.join(OUT, "descriptions.json"), "w") as f:
        json.dump(DESCRIPTIONS, f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "expected_descriptions.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
