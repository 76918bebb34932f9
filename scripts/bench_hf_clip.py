#!/usr/bin/env python3
"""HF transformers' CLIPModel on the same random shapes as `glov-cuda bench clip`, for a side-by-side comparison.

Builds the model from a config (random weights, no files), bf16, SDPA attention, and measures:
  vision: images/s of get_image_features at each --batch;
  scoring: templates/s of zero-shot scoring as glov-cuda does it (each template filled with every class name,
           get_text_features in passes of --text-batch, normalised, cosine with --images normalised image features,
           argmax and top-5 per image), --templates templates per timed call.
Times with CUDA events (median of --repeat after a warm-up). Prints JSON like `glov-cuda bench clip`.

  python3 scripts/bench_hf_clip.py --shape vit-b-32 --batch 256 1024
"""
import argparse
import json
import statistics
import time

import torch
from transformers import CLIPConfig, CLIPModel

SHAPES = {
    "vit-b-32": dict(text=(512, 2048, 8), vision=(768, 3072, 12, 12, 32), projection=512),
    "vit-b-16": dict(text=(512, 2048, 8), vision=(768, 3072, 12, 12, 16), projection=512),
    "vit-l-14": dict(text=(768, 3072, 12), vision=(1024, 4096, 16, 24, 14), projection=768),
}


def config(shape, layers=None):
    s = SHAPES[shape]
    t, v = s["text"], s["vision"]
    return CLIPConfig(
        projection_dim=s["projection"],
        text_config=dict(hidden_size=t[0], intermediate_size=t[1], num_attention_heads=t[2],
                         num_hidden_layers=layers or 12, max_position_embeddings=77),
        vision_config=dict(hidden_size=v[0], intermediate_size=v[1], num_attention_heads=v[2],
                           num_hidden_layers=layers or v[3], patch_size=v[4], image_size=224),
    )


def features(out):
    """transformers 5 returns the projected features as the pooler output of a model output; older ones, a tensor."""
    return out if torch.is_tensor(out) else out.pooler_output


def timer(device, repeat, fn):
    fn()
    times = []
    for _ in range(max(1, repeat)):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="vit-b-32", choices=sorted(SHAPES))
    p.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--templates", type=int, default=40)
    p.add_argument("--text-batch", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--layers", type=int, default=None, help="fewer layers (for a quick check on a CPU)")
    a = p.parse_args()

    torch.manual_seed(0)
    dtype = torch.bfloat16
    model = CLIPModel._from_config(config(a.shape, a.layers), attn_implementation="sdpa", dtype=dtype)
    model = model.to(a.device).eval()

    out = {"bench": "hf_clip", "shape": a.shape, "device": a.device,
           "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
           "torch": torch.__version__, "attention": "sdpa", "dtype": "bf16", "vision": []}
    with torch.inference_mode():
        for batch in a.batch:
            pixels = torch.randn(batch, 3, 224, 224, device=a.device, dtype=dtype)
            seconds = timer(a.device, a.repeat, lambda: features(model.get_image_features(pixel_values=pixels)))
            out["vision"].append({"batch": batch, "seconds": seconds, "images_per_s": batch / seconds})

        # Texts of realistic length: random ids of 12 tokens between start and end tokens, padded to 16.
        n_texts = a.templates * a.classes
        ids = torch.randint(1, 49000, (n_texts, 16), device=a.device)
        ids[:, 0], ids[:, 13], ids[:, 14:] = 49406, 49407, 49407
        mask = torch.ones_like(ids)
        mask[:, 14:] = 0
        images = torch.nn.functional.normalize(torch.randn(a.images, model.config.projection_dim, device=a.device), dim=-1)
        labels = torch.arange(a.images, device=a.device) % a.classes

        def score():
            feats = []
            for i in range(0, n_texts, a.text_batch):
                feats.append(features(model.get_text_features(input_ids=ids[i:i + a.text_batch],
                                                              attention_mask=mask[i:i + a.text_batch])))
            text = torch.nn.functional.normalize(torch.cat(feats).float(), dim=-1).view(a.templates, a.classes, -1)
            sims = torch.einsum("id,tcd->tic", images, text)
            top5 = sims.topk(min(5, a.classes), dim=-1).indices
            correct1 = (top5[..., 0] == labels).sum(-1)
            correct5 = (top5 == labels[None, :, None]).any(-1).sum(-1)
            return correct1.cpu(), correct5.cpu()

        seconds = timer(a.device, a.repeat, score)
        out["scoring"] = {"templates": a.templates, "classes": a.classes, "images": a.images, "seconds": seconds,
                          "templates_per_s": a.templates / seconds}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
