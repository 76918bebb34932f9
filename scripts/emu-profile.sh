#!/usr/bin/env bash
# The emulator as a profiler: runs a small-shape `bench glov-step` (a 2-layer small-100m LLM with a 4,096-token
# vocabulary, 2 steered prompt groups of 2 answers, then CLIP ViT-B/32 widths with 1 layer scoring 4 templates x 10
# classes) on the emulator with its counters on, and prints the per-kernel counter table and one decode step's
# global-memory traffic against the ideal (weights and KV cache read once).
#
#   cargo build --release && bash scripts/emu-profile.sh [OUT_DIR]
#
# OUT_DIR (default: a temporary folder) keeps bench.json, counters.json and launches.jsonl. The counters measure
# what the kernels ask of memory, by the ISA; only a GPU measures time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
rm -f "$out/launches.jsonl"
GLOV_EMU_COUNTERS="$out/counters.json" GLOV_EMU_LAUNCH_LOG="$out/launches.jsonl" \
    bash "$root/scripts/emulated.sh" "$root/target/release/glov-cuda" --device cuda bench glov-step \
    --llm-shape small-100m --llm-layers 2 --vocab 4096 --clip-layers 1 --groups 2 --sequences 4 \
    --prompt-tokens 64 --new-tokens 4 --templates 4 --classes 10 --images 100 --repeat 1 >"$out/bench.json"
python3 "$root/scripts/emu_profile_table.py" "$out"
