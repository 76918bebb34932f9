#!/usr/bin/env python3
"""Prints what `scripts/emu-profile.sh` measured on the emulator: per kernel, launches, threads per block, warp
instructions by class, global-memory coalescing (sectors per request, requested bytes over sector bytes) and
shared-memory bank conflicts; then one decode step's global traffic against the ideal: requested, in sectors, and
the DRAM bytes the emulator's L2 model estimates.

    python3 scripts/emu_profile_table.py DIR   (DIR holds bench.json, counters.json, launches.jsonl)
"""

import json
import sys
from pathlib import Path

CLASSES = ["memory", "arith", "special_fn", "tensor", "collective", "control"]


def kernel_table(kernels: dict) -> str:
    head = (f"{'kernel':<26} {'launches':>8} {'thr/blk':>7} {'warp insts':>11} "
            + " ".join(f"{c[:7]:>7}" for c in CLASSES)
            + f" {'sect/req':>8} {'coalesc':>7} {'shm req':>9} {'conflicts':>9}")
    rows = [head, "-" * len(head)]
    order = sorted(kernels.items(), key=lambda kv: -sum(kv[1]["warp_insts"].values()))
    for name, k in order:
        total = sum(k["warp_insts"].values())
        shares = " ".join(f"{100 * k['warp_insts'][c] / max(total, 1):6.1f}%" for c in CLASSES)
        g, s = k["global"], k["shared"]
        requests = s["load_requests"] + s["store_requests"]
        rows.append(f"{name:<26} {k['launches']:>8} {k['threads_per_block']:>7} {total:>11,} {shares} "
                    f"{g['sectors_per_request']:>8.2f} {g['efficiency']:>7.2f} {requests:>9,} "
                    f"{s['bank_conflicts']:>9,}")
    return "\n".join(rows)


def decode_step(launches: list, bench: dict) -> str:
    """The launches of the second decode step of the timed GLOV step: after one sampling launch, up to and with
    the next."""
    samples = [i for i, l in enumerate(launches) if l["kernel"].startswith("sample")]
    groups = bench["generation"]["groups"]
    new_tokens = bench["generation"]["new_tokens"]
    # Each generation samples new_tokens times; the bench runs the step twice (warm-up, timed): take the timed one.
    if new_tokens < 3 or len(samples) < 2 * new_tokens:
        return "no second decode step to show (it needs --new-tokens 3 or more and the timed step's launches)"
    timed = samples[new_tokens:2 * new_tokens]
    step = launches[timed[1] + 1:timed[2] + 1]
    load = sum(l["stats"]["global"]["load_bytes"] for l in step)
    store = sum(l["stats"]["global"]["store_bytes"] for l in step)
    sectors = sum(l["stats"]["global"]["load_sectors"] + l["stats"]["global"]["store_sectors"] for l in step)
    dram = sum(l["stats"]["dram"]["read_bytes"] + l["stats"]["dram"]["write_bytes"] for l in step)
    llm = bench["llm"]
    d, v, layers = llm["hidden"], llm["vocab"], llm["layers"]
    table = v * d
    untied_head = 0 if llm["tied_embeddings"] else v * d
    sequences = bench["generation"]["sequences"]
    blocks = llm["parameters"] - table - untied_head
    weights = 2 * (blocks + v * d + sequences * d)
    per_position = layers * 2 * llm["kv_heads"] * llm["head_dim"] * bench.get("kv_element_bytes", 2)
    prompt = bench["generation"]["prompt_tokens"]
    # Second decode step: each group's prompt once, each sequence's own two positions.
    kv = (groups * prompt + sequences * 2) * per_position
    ideal = weights + kv
    by_kernel = {}
    for l in step:
        g = l["stats"]["global"]
        by_kernel[l["kernel"]] = by_kernel.get(l["kernel"], 0) + g["load_bytes"] + g["store_bytes"]
    lines = [
        f"one decode step ({len(step)} launches, {sequences} sequences in {groups} groups, "
        f"{llm['layers']} layers, hidden {d}, vocab {v}):",
        f"  ideal (weights {weights:,} B + KV cache {kv:,} B, each read once): {ideal:,} B",
        f"  requested by the kernels: {load:,} B loaded + {store:,} B stored = {load + store:,} B "
        f"({(load + store) / ideal:.2f} x ideal)",
        f"  in 32-byte sectors touched per request: {sectors * 32:,} B ({sectors * 32 / ideal:.2f} x ideal)",
        f"  estimated from DRAM by the L2 model: {dram:,} B ({dram / ideal:.2f} x ideal)",
        "  by kernel (bytes requested): "
        + ", ".join(f"{k} {b:,}" for k, b in sorted(by_kernel.items(), key=lambda kb: -kb[1])),
    ]
    return "\n".join(lines)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else sys.exit(__doc__)
    counters = json.loads((out / "counters.json").read_text())
    bench = json.loads((out / "bench.json").read_text())
    launches = [json.loads(line) for line in (out / "launches.jsonl").read_text().splitlines()]
    totals = counters["totals"]
    print(f"{counters['device']['name']}: {totals['launches']} launches, {totals['thread_insts']:,} thread "
          f"instructions in {totals['seconds']:.1f} s ({totals['thread_insts_per_second'] / 1e6:.0f} M/s)\n")
    print(kernel_table(counters["kernels"]))
    print()
    print(decode_step(launches, bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
