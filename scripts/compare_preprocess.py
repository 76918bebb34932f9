#!/usr/bin/env python3
"""Compare glov-cuda's image preprocessing with transformers' CLIPImageProcessorPil.

Runs both on the same image files and prints, per image and per group (lossless formats, JPEG, lossy WebP), the
largest and mean absolute difference in normalised units and in 0..255 pixel units (difference * std * 255), and
how many values are exactly equal.

Default image set: real photographs from the scikit-image wheel (astronaut, chelsea, coffee, motorcycle, ...,
plus a quality-90 JPEG re-encoding of astronaut) and synthetic files in the awkward modes (palette, palette with
transparency, RGBA, grey + alpha, grey, 1-bit, 16-bit RGB and grey, GIF, WebP), preprocessed with the ViT-B/32
settings (shortest edge 224, centre crop 224, bicubic, OpenAI mean/std).

`--sweep N` additionally checks N random cases for bit-exactness: random image and target sizes (up- and
down-scaling), every PIL filter, and random size / crop settings (including crops larger than the image), half of
them against PIL's `Image.resize` alone and half against the full processor.

Usage:
    python scripts/compare_preprocess.py [--wheel /tmp/skimg/scikit_image-*.whl] [--binary PATH] [--sweep 200]
    python scripts/compare_preprocess.py --images a.jpg b.png ...

Without --binary the example is built with `cargo build --release --example preprocess_dump`.
"""

import argparse
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VIT_B32_CONFIG = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}

SKIMAGE_FILES = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "camera.png",
    "logo.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "rocket.jpg",
]



# ----------------------------------------------------------------------------------------------------------------
# Running the two implementations


def build_binary():
    subprocess.run(["cargo", "build", "--release", "--example", "preprocess_dump"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "release", "examples", "preprocess_dump")


def write_config(directory, config):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "preprocessor_config.json"), "w") as f:
        json.dump(config, f)
    return os.path.join(directory, "preprocessor_config.json")


def run_ours(binary, config_path, paths, workdir):
    out = os.path.join(workdir, "ours.bin")
    proc = subprocess.run([binary, config_path, out, *paths], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"preprocess_dump failed ({proc.returncode}):\n{proc.stderr}")
    n, c, h, w = (int(x) for x in proc.stdout.split())
    data = np.fromfile(out, dtype="<f4")
    assert data.size == n * c * h * w, (data.size, n, c, h, w)
    return data.reshape(n, c, h, w)


def hf_processor(config_dir):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil.from_pretrained(config_dir)


def run_hf(processor, image):
    """transformers on a PIL image (opened, not converted: the processor converts)."""
    out = processor(images=image, return_tensors="np")["pixel_values"][0]
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Test images


def write_png(path, array, color_type, bit_depth, extra_chunks=b""):
    """Minimal PNG writer for layouts Pillow cannot save (16-bit RGB / RGBA)."""
    height, width = array.shape[:2]
    data = array.astype(">u2") if bit_depth == 16 else array.astype(np.uint8)
    raw = b"".join(b"\x00" + data[row].tobytes() for row in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra_chunks)
        f.write(chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def extract_skimage(wheel, directory):
    paths = []
    with zipfile.ZipFile(wheel) as z:
        for name in SKIMAGE_FILES:
            member = f"skimage/data/{name}"
            if member not in z.namelist():
                print(f"  (not in wheel: {name})")
                continue
            path = os.path.join(directory, name)
            with open(path, "wb") as f:
                f.write(z.read(member))
            paths.append(path)
    return paths


def make_synthetic(directory, base_rgb, base_grey):
    """Files in the modes where the conversion to RGB is not trivial. Returns the paths."""
    rng = np.random.default_rng(1234)
    rgb = np.asarray(base_rgb.convert("RGB"))
    h, w = rgb.shape[:2]
    grey = np.asarray(base_grey.convert("L"))
    paths = []

    def out(name):
        path = os.path.join(directory, name)
        paths.append(path)
        return path

    palette = base_rgb.convert("RGB").quantize(colors=200)
    palette.save(out("synthetic_palette.png"))
    # Palette with transparent entries (tRNS): transformers composites them onto white.
    trns = bytes([0 if i % 7 == 0 else (255 if i % 3 else 128) for i in range(200)])
    palette.save(out("synthetic_palette_trns.png"), transparency=trns)
    alpha = np.clip(np.linspace(-60, 320, w)[None, :] + np.zeros((h, 1)), 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(out("synthetic_rgba.png"))
    gh, gw = grey.shape
    galpha = np.clip(np.linspace(300, -40, gh)[:, None] + np.zeros((1, gw)), 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([grey, galpha]), "LA").save(out("synthetic_grey_alpha.png"))
    Image.fromarray(grey, "L").save(out("synthetic_grey.png"))
    Image.fromarray(grey > 128).convert("1").save(out("synthetic_bilevel.png"))
    # RGB with a transparency key colour.
    keyed = rgb.copy()
    keyed[h // 3 : h // 2, w // 3 : w // 2] = (1, 2, 3)
    Image.fromarray(keyed, "RGB").save(out("synthetic_rgb_trns.png"), transparency=(1, 2, 3))
    # 16-bit: high bytes from the photo, random low bytes (Pillow keeps the high byte).
    rgb16 = rgb.astype(np.uint16) * 256 + rng.integers(0, 256, rgb.shape, dtype=np.uint16)
    write_png(out("synthetic_rgb16.png"), rgb16, 2, 16)
    rgba16 = np.dstack([rgb16, (alpha.astype(np.uint16) * 257)])
    write_png(out("synthetic_rgba16.png"), rgba16, 6, 16)
    grey16 = grey.astype(np.uint16) * 256 + rng.integers(0, 256, grey.shape, dtype=np.uint16)
    write_png(out("synthetic_grey16.png"), grey16, 0, 16)
    # GIF (palette, first frame) with a transparent index.
    gif = base_rgb.convert("RGB").quantize(colors=64)
    gif.save(out("synthetic_transparent.gif"), transparency=5)
    Image.fromarray(rgb).save(out("synthetic.bmp"))
    Image.fromarray(rgb).save(out("synthetic_lossless.webp"), lossless=True)
    Image.fromarray(rgb).save(out("synthetic_lossy.webp"), quality=90)
    Image.fromarray(grey, "L").save(out("synthetic_grey.jpg"), quality=90)
    return paths


# ----------------------------------------------------------------------------------------------------------------
# Comparison


def diff_stats(ours, ref, std):
    d = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    pixel = d * (np.asarray(std, dtype=np.float64)[:, None, None] * 255.0)
    return {
        "max": d.max(),
        "mean": d.mean(),
        "max_px": pixel.max(),
        "mean_px": pixel.mean(),
        "equal": int((ours == ref).sum()),
        "total": d.size,
        "sum": d.sum(),
        "sum_px": pixel.sum(),
    }


def print_row(name, s):
    print(
        f"  {name:32s} max {s['max']:.3e}  mean {s['mean']:.3e}   max_px {s['max_px']:7.3f}  "
        f"mean_px {s['mean_px']:.4f}   equal {s['equal']}/{s['total']} ({100.0 * s['equal'] / s['total']:.2f}%)"
    )


def merge(stats):
    total = sum(s["total"] for s in stats)
    return {
        "max": max(s["max"] for s in stats),
        "mean": sum(s["sum"] for s in stats) / total,
        "max_px": max(s["max_px"] for s in stats),
        "mean_px": sum(s["sum_px"] for s in stats) / total,
        "equal": sum(s["equal"] for s in stats),
        "total": total,
        "sum": sum(s["sum"] for s in stats),
        "sum_px": sum(s["sum_px"] for s in stats),
    }


def compare_files(binary, paths, workdir):
    config_dir = os.path.join(workdir, "vit_b32")
    config_path = write_config(config_dir, VIT_B32_CONFIG)
    processor = hf_processor(config_dir)
    std = VIT_B32_CONFIG["image_std"]
    ours = run_ours(binary, config_path, paths, workdir)

    groups = {"lossless": [], "JPEG": [], "lossy WebP": [], "16-bit grey (deliberate difference)": []}
    print(f"\n{len(paths)} images, ViT-B/32 settings; differences ours - transformers CLIPImageProcessorPil")
    for path, mine in zip(paths, ours):
        name = os.path.basename(path)
        image = Image.open(path)
        ref = run_hf(processor, image)
        stats = diff_stats(mine, ref, std)
        label = f"{name} [{image.mode} {image.size[0]}x{image.size[1]}]"
        if name == "synthetic_grey16.png":
            groups["16-bit grey (deliberate difference)"].append(stats)
            print_row(label, stats)
            # Pillow clips 16-bit grey to 255 in convert("RGB"); against its high byte the rest is exact.
            high = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8), "L")
            print_row("  vs PIL on (v >> 8)", diff_stats(mine, run_hf(processor, high), std))
            continue
        if name.lower().endswith((".jpg", ".jpeg")):
            group = "JPEG"
        elif name.lower().endswith("_lossy.webp"):
            group = "lossy WebP"
        else:
            group = "lossless"
        groups[group].append(stats)
        print_row(label, stats)

    print("\nsummary")
    for group, stats in groups.items():
        if stats:
            print_row(f"{group} ({len(stats)})", merge(stats))
    everything = [s for g, stats in groups.items() if not g.startswith("16-bit") for s in stats]
    print_row("all except 16-bit grey", merge(everything))
    return groups


def random_photo(rng, w, h):
    """Smooth content with edges and noise, so that resampling sees realistic and extreme values."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy = rng.uniform(0.01, 0.5, 2)
    base = 127.5 + 127.5 * np.sin(x * fx + rng.uniform(0, 6)) * np.cos(y * fy + rng.uniform(0, 6))
    img = np.dstack([base, base[::-1, :] if h > 1 else base, np.full_like(base, rng.uniform(0, 255))])
    img += rng.normal(0, rng.uniform(0, 60), img.shape)
    img[rng.random((h, w)) < 0.02] = 255
    img[rng.random((h, w)) < 0.02] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def sweep(binary, trials, workdir, seed):
    rng = np.random.default_rng(seed)
    exact = 0
    skipped = 0
    worst = []
    for t in range(trials):
        filt = int(rng.integers(0, 6))
        n_img = 3
        # Mostly small images (fast), with some photo-sized ones and some very tall or wide ones.
        limit = 3000 if t % 5 == 4 else 700
        sizes = [(int(rng.integers(1, limit)), int(rng.integers(1, limit))) for _ in range(n_img)]
        trial_dir = os.path.join(workdir, f"sweep{t}")
        os.makedirs(trial_dir, exist_ok=True)
        paths = []
        for i, (w, h) in enumerate(sizes):
            path = os.path.join(trial_dir, f"img{i}.png")
            Image.fromarray(random_photo(rng, w, h), "RGB").save(path)
            paths.append(path)
        if t % 2 == 0:
            # Raw resize to an exact size, compared with PIL's Image.resize alone.
            th, tw = int(rng.integers(1, 500)), int(rng.integers(1, 500))
            config = {
                "size": {"height": th, "width": tw},
                "do_center_crop": False,
                "do_rescale": False,
                "do_normalize": False,
                "resample": filt,
            }
            refs = [
                np.asarray(Image.open(p).convert("RGB").resize((tw, th), resample=filt), dtype=np.float32).transpose(2, 0, 1)
                for p in paths
            ]
            what = f"resize {filt} -> {tw}x{th}"
        else:
            kind = int(rng.integers(0, 4))
            s = int(rng.integers(16, 400))
            size = [
                {"shortest_edge": s},
                {"height": int(rng.integers(16, 400)), "width": int(rng.integers(16, 400))},
                {"shortest_edge": s, "longest_edge": s + int(rng.integers(1, 300))},
                {"max_height": int(rng.integers(16, 400)), "max_width": int(rng.integers(16, 400))},
            ][kind]
            config = {
                "size": size,
                "crop_size": {"height": int(rng.integers(8, 450)), "width": int(rng.integers(8, 450))},
                "resample": filt,
                "image_mean": [float(v) for v in rng.uniform(0.2, 0.8, 3)],
                "image_std": [float(v) for v in rng.uniform(0.1, 0.5, 3)],
            }
            processor = hf_processor(os.path.dirname(write_config(os.path.join(trial_dir, "cfg"), config)))
            try:
                refs = [run_hf(processor, Image.open(p)) for p in paths]
            except ValueError as e:
                # A resize to zero pixels (a sliver of an image under max_height / max_width): transformers
                # raises where this crate clamps to one pixel, so there is nothing to compare.
                skipped += 1
                print(f"  skipped (transformers: {e}) {size} on {sizes}")
                continue
            what = f"processor {filt} size={size} crop={config['crop_size']}"
        config_path = write_config(os.path.join(trial_dir, "cfg"), config)
        ours = run_ours(binary, config_path, paths, trial_dir)
        ok = all(np.array_equal(o, r) for o, r in zip(ours, refs))
        exact += ok
        if not ok:
            worst.append((what, sizes, max(float(np.abs(o - r).max()) for o, r in zip(ours, refs))))
    print(f"\nsweep: {exact}/{trials - skipped} random cases ({3 * (trials - skipped)} images) bit-exact")
    for what, sizes, d in worst[:10]:
        print(f"  MISMATCH {what} on {sizes}: max |diff| {d}")
    return exact == trials - skipped


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", default=None, help="scikit-image wheel (default: /tmp/skimg/scikit_image-*.whl)")
    parser.add_argument("--images", nargs="*", help="compare these files instead of the default set")
    parser.add_argument("--binary", help="prebuilt preprocess_dump (default: build it with cargo)")
    parser.add_argument("--sweep", type=int, default=0, help="also check N random cases for bit-exactness")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the test images here instead of a temporary directory")
    args = parser.parse_args()

    binary = args.binary or build_binary()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or tmp
        os.makedirs(workdir, exist_ok=True)
        if args.images:
            paths = [os.path.abspath(p) for p in args.images]
        else:
            wheel = args.wheel or next(iter(sorted(glob.glob("/tmp/skimg/scikit_image-*.whl"))), None)
            if wheel is None:
                sys.exit("no scikit-image wheel: pip download scikit-image --no-deps -d /tmp/skimg, or pass --images")
            image_dir = os.path.join(workdir, "images")
            os.makedirs(image_dir, exist_ok=True)
            paths = extract_skimage(wheel, image_dir)
            astronaut = Image.open(os.path.join(image_dir, "astronaut.png"))
            q90 = os.path.join(image_dir, "astronaut_q90.jpg")
            astronaut.convert("RGB").save(q90, quality=90)
            paths.append(q90)
            camera = Image.open(os.path.join(image_dir, "camera.png"))
            paths += make_synthetic(image_dir, astronaut.crop((40, 0, 440, 300)), camera.crop((0, 50, 300, 450)))
        compare_files(binary, paths, workdir)
        ok = True
        if args.sweep:
            ok = sweep(binary, args.sweep, workdir, args.seed)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
