#!/usr/bin/env python3
"""Generate examples/tiny-dataset/: a tiny synthetic image dataset for the quick start.

The images are synthetic: simple coloured shapes drawn with Pillow on randomly
tinted gradient backgrounds with speckle noise, with random position, size,
rotation and shade. They are not photographs and nothing learned from them
means anything; they only let `glov-cuda score` and `glov-cuda optimize` run
end to end in seconds.

Layout (the class-folder split layout the crate reads; folder names with `_`
become class names with spaces, so no classnames.txt is needed):

    examples/tiny-dataset/{train,val,test}/<class>/<class>_<n>.png

5 classes (red circle, blue square, green triangle, yellow star, purple
stripes), 64x64 RGB PNGs, 2 images per class in train, 2 in val, 3 in test
(35 images). Deterministic: the same seed gives the same pixels.

Run from anywhere:  python3 scripts/make_example_dataset.py
"""
import math
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "tiny-dataset")
SEED = 20240917
SIZE = 64
SCALE = 4  # shapes are drawn at SCALE x the size and downsampled, for smooth edges
SPLITS = {"train": 2, "val": 2, "test": 3}
CLASSES = ["red_circle", "blue_square", "green_triangle", "yellow_star", "purple_stripes"]
COLOURS = {
    "red_circle": (210, 40, 40),
    "blue_square": (40, 70, 200),
    "green_triangle": (40, 160, 60),
    "yellow_star": (235, 200, 30),
    "purple_stripes": (130, 50, 160),
}


def jitter(rng, colour, amount=25):
    """The colour with each channel moved by up to `amount`."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def background(rng):
    """A light, randomly tinted vertical gradient, as a float array at the final size."""
    top = rng.integers(170, 250, size=3).astype(np.float32)
    bottom = np.clip(top + rng.integers(-40, 41, size=3), 120, 255).astype(np.float32)
    t = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[:, None, None]
    img = top * (1 - t) + bottom * t
    img = np.broadcast_to(img, (SIZE, SIZE, 3)).copy()
    return img


def rotated(points, centre, angle):
    cx, cy = centre
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def shape(rng, cls):
    """The shape of class `cls`: its colour and its alpha mask (drawn at SCALE x the size, then downsampled)."""
    big = SIZE * SCALE
    mask = Image.new("L", (big, big), 0)
    colour = jitter(rng, COLOURS[cls])
    draw = ImageDraw.Draw(mask)
    r = rng.uniform(0.22, 0.36) * big  # the shape's "radius"
    cx = rng.uniform(r + 0.04 * big, big - r - 0.04 * big)
    cy = rng.uniform(r + 0.04 * big, big - r - 0.04 * big)
    angle = rng.uniform(0, 2 * math.pi)

    def polygon(points):
        draw.polygon(points, fill=255)

    if cls == "red_circle":
        box = [cx - r, cy - r, cx + r, cy + r]
        draw.ellipse(box, fill=255)
    elif cls == "blue_square":
        h = r / math.sqrt(2) * 1.2
        polygon(rotated([(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)], (cx, cy), angle))
    elif cls == "green_triangle":
        polygon([(cx + r * math.cos(angle + k * 2 * math.pi / 3), cy + r * math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)])
    elif cls == "yellow_star":
        points = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.42
            a = angle + k * math.pi / 5
            points.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        polygon(points)
    elif cls == "purple_stripes":
        # Parallel stripes across the whole image at a random angle and period.
        period = rng.uniform(0.16, 0.26) * big
        width = period * rng.uniform(0.4, 0.6)
        offset = rng.uniform(0, period)
        c, s = math.cos(angle), math.sin(angle)
        half = big  # long enough to cross the image at any angle
        centre = big / 2
        k = -int(big / period) - 2
        while k * period < big:
            d = k * period + offset
            # A stripe: the band between distances d and d + width from the centre, along the normal (c, s).
            px, py = centre + d * c, centre + d * s
            qx, qy = centre + (d + width) * c, centre + (d + width) * s
            polygon([(px - half * s, py + half * c), (px + half * s, py - half * c),
                     (qx + half * s, qy - half * c), (qx - half * s, qy + half * c)])
            k += 1
    else:
        raise ValueError(cls)
    return colour, mask.resize((SIZE, SIZE), Image.LANCZOS)


def make_image(rng, cls):
    bg = background(rng)
    colour, mask = shape(rng, cls)
    alpha = np.asarray(mask, dtype=np.float32)[:, :, None] / 255.0
    img = bg * (1 - alpha) + np.asarray(colour, dtype=np.float32) * alpha
    # Speckle noise on about 5% of the pixels (dense noise would make the PNGs several times larger).
    speck = rng.random(img.shape[:2]) < 0.05
    img = img + speck[:, :, None] * rng.normal(0.0, 14.0, size=img.shape)
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def main():
    rng = np.random.default_rng(SEED)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    count, total = 0, 0
    for split, per_class in SPLITS.items():
        for cls in CLASSES:
            folder = os.path.join(OUT, split, cls)
            os.makedirs(folder)
            for n in range(per_class):
                path = os.path.join(folder, f"{cls}_{n}.png")
                make_image(rng, cls).save(path, optimize=True)
                count += 1
                total += os.path.getsize(path)
    print(f"wrote {count} images ({total / 1024:.1f} KiB) under {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
