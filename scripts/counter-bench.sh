#!/usr/bin/env bash
# The counter benchmark: one GLOV step at a fixed shape (a 2-layer small-100m LLM with a 4,096-token vocabulary,
# 40 sequences in 4 prompt groups of 200 tokens, 4 new tokens; CLIP ViT-B/32 widths with 1 layer scoring 4 templates
# x 10 classes) run on the emulator with its launch log, then scripts/counter_budget.py: the table of the prefill,
# the second decode step and the scoring against their floors, and the check against the committed baseline.
#
#   cargo build --release && bash scripts/counter-bench.sh [OUT_DIR] [--write]
#
# --write makes OUT_DIR's figures the new baseline (bench/counters/glov-step.json): commit it with the change that
# moved them. The counters are deterministic; only a GPU measures time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$(mktemp -d)}"
shift || true
mkdir -p "$out"
rm -f "$out/launches.jsonl"
GLOV_EMU_LAUNCH_LOG="$out/launches.jsonl" \
    bash "$root/scripts/emulated.sh" "$root/target/release/glov-cuda" --device cuda bench glov-step \
    --llm-shape small-100m --llm-layers 2 --vocab 4096 --clip-layers 1 --groups 4 --sequences 40 \
    --prompt-tokens 200 --new-tokens 4 --templates 4 --classes 10 --images 100 --repeat 1 >"$out/bench.json"
python3 "$root/scripts/counter_budget.py" "$out" "$root/bench/counters/glov-step.json" "$@"
