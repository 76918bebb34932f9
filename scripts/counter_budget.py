#!/usr/bin/env python3
"""The emulator's counters as a performance test: one GLOV step's decode step, prefill and CLIP scoring, measured by
`scripts/counter-bench.sh`, against their floors and against a committed baseline.

    python3 scripts/counter_budget.py DIR BASELINE           check DIR (bench.json, launches.jsonl) against BASELINE
    python3 scripts/counter_budget.py DIR BASELINE --write   write DIR's figures as the new BASELINE

The counters are deterministic (the same binary and shape give the same numbers), so they gate like a test. The
check fails when, in the second decode step of the timed step,
  - a decoder layer takes more than 7 launches,
  - the DRAM bytes the emulator's L2 model estimates exceed 1.10 x the floor (weights and KV cache read once),
  - the bytes the kernels request exceed 1.5 x the floor,
  - the attention kernels request more than 1.2 x the KV cache they must read,
  - a kernel's sector efficiency (requested over sector bytes) falls below 0.8,
  - the requested bytes, the requested bytes of any kernel, or its launches grow past the baseline,
  - any kernel's sector efficiency (requested over sector bytes) or bank conflicts get worse than the baseline's,
    or the cp.async bytes one of its blocks keeps in flight fall below the baseline's.
Byte and conflict counts may exceed the baseline by SLACK (1%), efficiencies fall short by 0.01: sampling's passes
and shared-memory histogram depend on the logits, which any change of rounding upstream moves a little.
Only a GPU measures time.
"""

import argparse
import json
import sys
from pathlib import Path

LAUNCHES_PER_LAYER = 7
DRAM_OVER_FLOOR = 1.10
REQUESTED_OVER_FLOOR = 1.5
ATTENTION_OVER_CACHE = 1.2
SECTOR_EFFICIENCY = 0.8
SLACK = 0.01
# Bytes each SM must keep in flight for an H100 SXM's HBM bandwidth at about 600 ns of latency (Little's law).
LITTLE_BYTES_PER_SM = round(3.35e12 * 600e-9 / 132)
# Launches a decode step makes outside its decoder layers: the token embedding, the steering add, the gather of the
# rows that are sampled and the sampling; besides them the final RMS norm and the LM head's product. A block's input
# norm is the layer's (fused into the previous product but after the first block and a steering add).
PER_STEP_KERNELS = {"embed_rows", "add_rows", "gather_rows_bf16", "sample"}


def traffic(launches: list) -> dict:
    """Requested, sector and estimated DRAM bytes of some launches, in all and by kernel; tensor-core FLOPs."""
    by_kernel = {}
    for l in launches:
        g, s = l["stats"]["global"], l["stats"]["shared"]
        k = by_kernel.setdefault(l["kernel"], {"launches": 0, "requested": 0, "sector_bytes": 0, "bank_conflicts": 0})
        k["launches"] += 1
        k["requested"] += g["load_bytes"] + g["store_bytes"]
        k["sector_bytes"] += 32 * (g["load_sectors"] + g["store_sectors"])
        k["bank_conflicts"] += s["bank_conflicts"]
        k["in_flight"] = max(k.get("in_flight", 0), l["stats"].get("async_copy", {}).get("in_flight_per_block", 0))
    for k in by_kernel.values():
        k["efficiency"] = round(k["requested"] / k["sector_bytes"], 4) if k["sector_bytes"] else 1.0
    return {
        "launches": len(launches),
        "requested": sum(k["requested"] for k in by_kernel.values()),
        "sector_bytes": sum(k["sector_bytes"] for k in by_kernel.values()),
        "dram": sum(l["stats"]["dram"]["read_bytes"] + l["stats"]["dram"]["write_bytes"] for l in launches),
        # mma.sync m16n8k16: 16 x 8 x 16 multiply-adds per warp instruction.
        "tensor_flops": sum(2 * 16 * 8 * 16 * l["stats"]["warp_insts"]["tensor"] for l in launches),
        "kernels": by_kernel,
    }


def phases(launches: list, bench: dict) -> dict:
    """The timed GLOV step's prefill (up to its first sampling), its second decode step and its CLIP scoring (after
    its last sampling), with the floors of each."""
    gen = bench["generation"]
    new_tokens = gen["new_tokens"]
    samples = [i for i, l in enumerate(launches) if l["kernel"].startswith("sample")]
    if new_tokens < 3 or len(samples) < 2 * new_tokens:
        sys.exit("no second decode step to measure: run the bench with --new-tokens 3 or more")
    # The bench runs the step twice (warm-up, timed); the timed step's samplings are the second new_tokens.
    timed = samples[new_tokens:2 * new_tokens]
    # The warm-up step's scoring runs before the timed step, whose generation starts with a token embedding.
    start = next(i for i in range(samples[new_tokens - 1] + 1, timed[0]) if launches[i]["kernel"] == "embed_rows")
    prefill = launches[start:timed[0] + 1]
    decode = launches[timed[1] + 1:timed[2] + 1]
    scoring = launches[timed[-1] + 1:]
    llm = bench["llm"]
    d, v, layers = llm["hidden"], llm["vocab"], llm["layers"]
    untied_head = 0 if llm["tied_embeddings"] else v * d
    blocks = llm["parameters"] - v * d - untied_head
    groups, sequences, prompt = gen["groups"], gen["sequences"], gen["prompt_tokens"]
    kv_per_token = layers * 2 * llm["kv_heads"] * llm["head_dim"] * bench.get("kv_element_bytes", 2)
    # Decode floor: every block weight, the LM head and each sampled row's embedding once, each group's prompt and
    # each sequence's own two positions of the KV cache once.
    decode_floor = 2 * (blocks + v * d + sequences * d) + (groups * prompt + sequences * 2) * kv_per_token
    # Prefill floor: the weights once, the prompts' KV cache written once; its useful FLOPs those of the products.
    prefill_tokens = groups * prompt
    prefill_floor = 2 * (blocks + v * d) + prefill_tokens * kv_per_token
    prefill_flops = 2 * prefill_tokens * blocks + 2 * groups * v * d
    return {
        "decode": {**traffic(decode), "floor": decode_floor, "kv_bytes": (groups * prompt + sequences * 2) * kv_per_token,
                   "launches_per_layer": launches_per_layer(decode, layers)},
        "prefill": {**traffic(prefill), "floor": prefill_floor, "useful_flops": prefill_flops},
        "scoring": {**traffic(scoring)},
    }


def launches_per_layer(decode: list, layers: int) -> float:
    per_step = sum(1 for l in decode if l["kernel"] in PER_STEP_KERNELS) + 2
    return (len(decode) - per_step) / layers


def table(figures: dict, bench: dict) -> str:
    d, p, s = figures["decode"], figures["prefill"], figures["scoring"]
    gen, llm = bench["generation"], bench["llm"]
    lines = [
        f"GLOV step: {llm['layers']} layers of hidden {llm['hidden']}, vocab {llm['vocab']}; {gen['sequences']} "
        f"sequences in {gen['groups']} groups, prompts of {gen['prompt_tokens']} tokens; CLIP scoring of "
        f"{bench['scoring']['texts']} texts",
        f"{'phase':<8} {'launches':>8} {'floor B':>13} {'requested B':>13} {'x':>5} {'sectors B':>13} {'x':>5} "
        f"{'DRAM B':>13} {'x':>5} {'mma FLOPs':>14} {'useful':>14}",
    ]

    def row(name, f, floor, useful=None):
        ratio = (lambda b: f"{b / floor:5.2f}") if floor else (lambda b: "    -")
        lines.append(
            f"{name:<8} {f['launches']:>8} {floor or 0:>13,} {f['requested']:>13,} {ratio(f['requested'])} "
            f"{f['sector_bytes']:>13,} {ratio(f['sector_bytes'])} {f['dram']:>13,} {ratio(f['dram'])} "
            f"{f['tensor_flops']:>14,} {useful if useful is not None else '-':>14}"
        )

    row("prefill", p, p["floor"], f"{p['useful_flops']:,}")
    row("decode", d, d["floor"])
    row("scoring", s, None)
    lines.append(f"decode: {d['launches_per_layer']:.1f} launches per layer; by kernel:")
    lines.append(f"  {'kernel':<24} {'launches':>8} {'requested B':>13} {'efficiency':>10} {'conflicts':>9} "
                 f"{'in flight B':>11}")
    for name, k in sorted(d["kernels"].items(), key=lambda kv: -kv[1]["requested"]):
        in_flight = f"{k['in_flight']:,}" if k.get("in_flight") else "-"
        lines.append(f"  {name:<24} {k['launches']:>8} {k['requested']:>13,} {k['efficiency']:>10.2f} "
                     f"{k['bank_conflicts']:>9,} {in_flight:>11}")
    lines.append(f"in flight: cp.async source bytes a block keeps in flight; Little's law asks an H100 SXM for "
                 f"{LITTLE_BYTES_PER_SM:,} B per SM (3.35 TB/s x 600 ns / 132 SMs)")
    return "\n".join(lines)


def check(figures: dict, baseline: dict | None) -> list:
    """The failures, as lines."""
    d = figures["decode"]
    failures = []
    if d["launches_per_layer"] > LAUNCHES_PER_LAYER:
        failures.append(f"{d['launches_per_layer']:.1f} launches per decoder layer (at most {LAUNCHES_PER_LAYER})")
    if d["dram"] > DRAM_OVER_FLOOR * d["floor"]:
        failures.append(f"estimated DRAM bytes {d['dram']:,} > {DRAM_OVER_FLOOR} x the floor {d['floor']:,}")
    if baseline:
        b = baseline["decode"]
        if d["requested"] > (1 + SLACK) * b["requested"]:
            failures.append(f"requested bytes {d['requested']:,} > the baseline's {b['requested']:,}")
        for name, k in d["kernels"].items():
            was = b["kernels"].get(name)
            if was is None:
                continue
            for field, worse in [("requested", k["requested"] > (1 + SLACK) * was["requested"]),
                                 ("launches", k["launches"] > was["launches"]),
                                 ("efficiency", k["efficiency"] < was["efficiency"] - SLACK),
                                 ("bank_conflicts", k["bank_conflicts"] > (1 + SLACK) * was["bank_conflicts"]),
                                 ("in_flight", k.get("in_flight", 0) < was.get("in_flight", 0))]:
                if worse:
                    failures.append(f"{name}: {field} {k.get(field, 0)} is worse than the baseline's {was[field]}")
    attention = sum(k["requested"] for n, k in d["kernels"].items() if n.startswith("attention"))
    if attention > ATTENTION_OVER_CACHE * d["kv_bytes"]:
        failures.append(f"attention bytes {attention:,} > {ATTENTION_OVER_CACHE} x the KV cache read {d['kv_bytes']:,}")
    for name, k in sorted(d["kernels"].items()):
        if k["efficiency"] < SECTOR_EFFICIENCY:
            failures.append(f"{name}: sector efficiency {k['efficiency']:.2f} < {SECTOR_EFFICIENCY}")
    if d["requested"] > REQUESTED_OVER_FLOOR * d["floor"]:
        failures.append(f"requested bytes {d['requested']:,} > {REQUESTED_OVER_FLOOR} x the floor {d['floor']:,}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--write", action="store_true", help="write the figures as the new baseline")
    args = parser.parse_args()
    text = (args.dir / "bench.json").read_text()
    if not text.strip():
        sys.exit(f"{args.dir / 'bench.json'} is empty: the bench did not finish (see its messages above)")
    bench = json.loads(text)
    launches = [json.loads(line) for line in (args.dir / "launches.jsonl").read_text().splitlines()]
    figures = phases(launches, bench)
    print(table(figures, bench))
    if args.write:
        tmp = args.baseline.with_suffix(".tmp")
        tmp.write_text(json.dumps({"engine": bench["engine"], **figures}, indent=1, sort_keys=True) + "\n")
        tmp.replace(args.baseline)
        print(f"baseline written: {args.baseline}")
        return 0
    baseline = json.loads(args.baseline.read_text()) if args.baseline.exists() else None
    if baseline is None:
        print(f"no baseline at {args.baseline}: only the fixed limits are checked")
    failures = check(figures, baseline)
    for f in failures:
        print(f"FAIL: {f}")
    print("counter budget: " + ("failed" if failures else "held"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
