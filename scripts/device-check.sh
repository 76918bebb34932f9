#!/usr/bin/env bash
# The one script a GPU server runs, given a stripped release binary built elsewhere (no cargo needed there; Python
# with torch and transformers is):
#
#   bash scripts/device-check.sh BINARY [RESULTS_DIR]
#
# It runs, each step under a time limit (510 s in all, so the whole fits in 9 minutes):
#   1. selftest: every kernel, plain and fast, against the CPU reference (JSON kept);
#   2. compute-sanitizer memcheck on selftest --quick (when compute-sanitizer is installed);
#   3. the ceilings: device-to-device copy bandwidth and torch's bf16 matmul (scripts/ceilings.py), and
#      glov-cuda bench gemm at the same product shapes, in each tile shape of the tensor-core kernel;
#   4. glov-cuda bench clip and, on the same card, HF transformers' CLIPModel (bf16, SDPA) at batch 256 and 1024
#      (scripts/bench_hf_clip.py);
#   5. glov-cuda bench llm and HF transformers' LlamaForCausalLM (bf16, SDPA, static cache; scripts/bench_hf_llm.py)
#      for llama3-8b and llama3-1b: prefill tokens/s of a 1,000-token prompt, decode tokens/s at batch 1, 10, 40
#      and 64 (one 1,000-token prompt, 50 new tokens), and ours against the memory-bandwidth roofline;
#   6. glov-cuda bench glov-step: one whole GLOV step (llama3-8b, 4 steered groups x 10 answers x 50 tokens, then
#      40 templates x 1,000 classes scored against 1,000 image features with ViT-B/32), by phase, with peak memory,
#      inside a 23 GiB arena (--gpu-memory 23GiB): both models and all work must fit what a 24 GB card offers;
# then writes one JSON file with everything (card, driver, date, binary version) to RESULTS_DIR (default
# bench/results/) and prints a summary table last. A failing step is recorded and the script goes on; the exit
# status is non-zero if any step failed.
set -uo pipefail
bin="${1:?usage: scripts/device-check.sh BINARY [RESULTS_DIR]}"
results="${2:-bench/results}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$results"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
status=0

step() {  # step NAME SECONDS COMMAND...: runs COMMAND, output to $work/NAME.out, records the exit status
    local name="$1" limit="$2"
    shift 2
    echo "== $name"
    timeout "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err"
    local rc=$?
    echo "$rc" >"$work/$name.rc"
    tail -n 40 "$work/$name.out"
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "$name failed (exit $rc):"
        tail -n 20 "$work/$name.err"
    fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$work/card.txt" 2>/dev/null || echo "unknown" >"$work/card.txt"
"$bin" --version >"$work/version.txt" 2>&1 || true

# Limits: 250 s for selftest, memcheck, the ceilings, the products and the CLIP benches, 260 s for the LLM and VLM
# ones; 510 s in all.
step selftest 80 "$bin" --device cuda selftest --json "$work/selftest.json"
if command -v compute-sanitizer >/dev/null; then
    step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin" --device cuda selftest --quick
else
    echo "== memcheck skipped: compute-sanitizer not found" | tee "$work/memcheck.out"
    echo "skipped" >"$work/memcheck.rc"
fi
step ceilings 25 python3 "$here/ceilings.py"
step bench_gemm 20 "$bin" --device cuda bench gemm --shapes decode-o-proj,prefill-o-proj,prefill-gate-up,clip-b32-mlp,square-8192
step bench_clip 25 "$bin" --device cuda bench clip --shape vit-b-32 --batch 256,1024
step bench_hf_clip 40 python3 "$here/bench_hf_clip.py" --device cuda --shape vit-b-32 --batch 256 1024
step bench_llm_8b 50 "$bin" --device cuda bench llm --shape llama3-8b --batch 1,10,40,64 --repeat 2
step bench_hf_llm_8b 70 python3 "$here/bench_hf_llm.py" --device cuda --shape llama3-8b --batch 1 10 40 64
step bench_llm_1b 30 "$bin" --device cuda bench llm --shape llama3-1b --batch 1,10,40,64 --repeat 2
step bench_hf_llm_1b 40 python3 "$here/bench_hf_llm.py" --device cuda --shape llama3-1b --batch 1 10 40 64
step bench_glov_step 40 "$bin" --device cuda --gpu-memory 23GiB bench glov-step --llm-shape llama3-8b --clip-shape vit-b-32
step bench_vlm 30 "$bin" --device cuda bench vlm --shape llava-ov-0.5b --repeat 2

python3 - "$work" "$results/device-check-$stamp.json" <<'PY'
import json, os, sys
work, target = sys.argv[1], sys.argv[2]
def read(name):
    try:
        return open(os.path.join(work, name)).read().strip()
    except OSError:
        return None
def load(name):
    text = read(name)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
steps = ["selftest", "memcheck", "ceilings", "bench_gemm", "bench_clip", "bench_hf_clip", "bench_llm_8b", "bench_hf_llm_8b",
         "bench_llm_1b", "bench_hf_llm_1b", "bench_glov_step", "bench_vlm"]
report = {
    "date": os.path.basename(target)[len("device-check-"):-len(".json")],
    "card": read("card.txt"),
    "binary": read("version.txt"),
    "exit": {s: read(f"{s}.rc") for s in steps},
    "selftest": load("selftest.json"),
    "ceilings": load("ceilings.out"),
    "bench_gemm": load("bench_gemm.out"),
    "bench_clip": load("bench_clip.out"),
    "bench_hf_clip": load("bench_hf_clip.out"),
    "bench_llm": {"llama3-8b": load("bench_llm_8b.out"), "llama3-1b": load("bench_llm_1b.out")},
    "bench_hf_llm": {"llama3-8b": load("bench_hf_llm_8b.out"), "llama3-1b": load("bench_hf_llm_1b.out")},
    "bench_glov_step": load("bench_glov_step.out"),
    "bench_vlm": load("bench_vlm.out"),
}
with open(target, "w") as f:
    json.dump(report, f, indent=2)
print(f"\nresults: {target}")
print(f"card: {report['card']}; binary: {report['binary']}")
for s in steps:
    print(f"  {s:<16} exit {report['exit'][s]}")
st = report["selftest"] or []
if st:
    bad = [r for r in st if not r["passed"]]
    print(f"  selftest: {len(st) - len(bad)}/{len(st)} cases passed" + "".join(f"\n    FAILED {r['kernel']} {r['subject']} {r['shape']}: {r['error']:.3e}" for r in bad))
c = report["ceilings"] or {}
if c:
    mm = c.get("matmul_bf16", {})
    print(f"  ceilings: copy {c.get('copy_gb_per_s', 0):.0f} GB/s; bf16 matmul " + ", ".join(f"{k} {v['tflop_per_s']:.0f} TFLOP/s" for k, v in mm.items()))
gemm = report["bench_gemm"] or {}
if gemm:
    torch_mm = (c.get("matmul_bf16") or {}) if c else {}
    shapes = ["auto", "64x64", "64x128", "64x256", "128x128"]
    print(f"  {'product (TFLOP/s)':<34} " + " ".join(f"{t:>7}" for t in shapes) + f" {'torch':>7}")
    for p in gemm.get("products", []):
        by = {r["tiles"]: r["tflop_per_s"] for r in p["runs"]}
        torch_t = (torch_mm.get(p["name"].replace("-", "_")) or {}).get("tflop_per_s")
        cell = lambda v: f"{v:>7.1f}" if v else f"{'-':>7}"
        label = f"{p['name']} {p['m']}x{p['n']}x{p['k']}"
        print(f"  {label:<34} " + " ".join(cell(by.get(t)) for t in shapes) + f" {cell(torch_t)}")
ours, hf = report["bench_clip"] or {}, report["bench_hf_clip"] or {}
print(f"  {'measure':<28} {'glov-cuda':>12} {'HF':>12} {'ratio':>7}")
def row(label, o, h):
    cell = lambda v: f"{v:>12.2f}" if v else f"{'-':>12}"
    ratio = f"{o / h:>6.2f}x" if o and h else f"{'-':>7}"
    print(f"  {label:<28} {cell(o)} {cell(h)} {ratio}")
hf_vision = {v["batch"]: v["images_per_s"] for v in hf.get("vision", [])}
for batch in sorted({v["batch"] for v in ours.get("vision", [])} | set(hf_vision)):
    o = next((v["images_per_s"] for v in ours.get("vision", []) if v["batch"] == batch), None)
    row(f"vision images/s, batch {batch}", o, hf_vision.get(batch))
row("scoring templates/s", (ours.get("scoring") or {}).get("templates_per_s"), (hf.get("scoring") or {}).get("templates_per_s"))
for shape in ["llama3-8b", "llama3-1b"]:
    ours, hf = report["bench_llm"][shape] or {}, report["bench_hf_llm"][shape] or {}
    if not ours and not hf:
        continue
    bw = (ours.get("copy_bandwidth") or {}).get("gb_per_s")
    print(f"\n  {shape} (copy bandwidth {bw:.0f} GB/s, read + write)" if bw else f"\n  {shape}")
    print(f"  {'measure':<28} {'glov-cuda':>12} {'HF':>12} {'ratio':>7} {'roofline':>9} {'unique':>7}")
    row("prefill tokens/s", (ours.get("prefill") or {}).get("tokens_per_s"), (hf.get("prefill") or {}).get("tokens_per_s"))
    ours_decode = {d["batch"]: d for d in ours.get("decode", [])}
    hf_decode = {d["batch"]: d.get("tokens_per_s") for d in hf.get("decode", [])}
    for batch in sorted(set(ours_decode) | set(hf_decode)):
        d = ours_decode.get(batch, {})
        roof = d.get("roofline") or {}
        label = f"decode tokens/s, batch {batch}"
        o, h = d.get("tokens_per_s"), hf_decode.get(batch)
        cell = lambda v: f"{v:>12.2f}" if v else f"{'-':>12}"
        ratio = f"{o / h:>6.2f}x" if o and h else f"{'-':>7}"
        frac = lambda k: f"{roof[k]:>8.0%}" if k in roof else f"{'-':>8}"
        print(f"  {label:<28} {cell(o)} {cell(h)} {ratio} {frac('fraction'):>9} {frac('fraction_unique'):>7}")
g = report["bench_glov_step"] or {}
if g:
    sec, gen, mem = g.get("seconds", {}), g.get("generation", {}), g.get("memory") or {}
    print(f"\n  glov-step ({g.get('llm_shape')} + {g.get('clip_shape')}: {gen.get('groups')} groups x "
          f"{gen.get('samples_per_group')} answers x {gen.get('new_tokens')} tokens, "
          f"{(g.get('scoring') or {}).get('templates')} templates x {(g.get('scoring') or {}).get('classes')} classes)")
    print("    " + ", ".join(f"{k} {sec[k]:.3f} s" for k in ["generation", "text_encoding", "scoring", "total"] if k in sec))
    gib = lambda b: f"{b / 2**30:.2f} GiB" if b is not None else "-"
    print(f"    peak device memory {gib(mem.get('peak'))} of {gib(mem.get('capacity'))}; KV cache {gib(g.get('kv_cache_bytes'))}")
PY
exit "$status"
