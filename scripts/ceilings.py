#!/usr/bin/env python3
"""The card's two ceilings, measured with torch (METHOD: measure them, don't trust datasheets):
  copy: device-to-device copy bandwidth, bytes read plus bytes written per second, of a 1 GiB buffer;
  matmul: bf16 product TFLOP/s through cuBLAS, as torch.nn.functional.linear (y = x W^T, W [N, K]: the linear
          layers' layout), at the shapes of `glov-cuda bench gemm`'s names: square 8192, CLIP ViT-B/32's MLP
          (256 images x 50 tokens by 768 -> 3072), Llama-3-8B's output projection at a decode batch of 40 and at a
          prefill of 2,000 tokens, and its gate and up projections at that prefill.
Median of 20 timed runs after warm-up, CUDA events. Prints JSON.
"""
import json
import statistics

import torch


def median_ms(fn, repeat=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda}
    n = 1 << 29  # bf16 elements: 1 GiB
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    out["copy_gb_per_s"] = 2 * src.numel() * 2 / (ms / 1000) / 1e9
    del src, dst
    matmul = {}
    shapes = {
        "square_8192": (8192, 8192, 8192),
        "clip_b32_mlp": (256 * 50, 768, 3072),
        "decode_o_proj": (40, 4096, 4096),
        "prefill_o_proj": (2000, 4096, 4096),
        "prefill_gate_up": (2000, 4096, 28672),
    }
    for name, (m, k, n) in shapes.items():
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        ms = median_ms(lambda: torch.nn.functional.linear(x, w))
        matmul[name] = {"m": m, "k": k, "n": n, "tflop_per_s": 2 * m * k * n / (ms / 1000) / 1e12}
    out["matmul_bf16"] = matmul
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
