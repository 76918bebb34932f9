#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (libFuzzer through libfuzzer-sys) for SECONDS each (default 60), every target or
# those named, seeded with the project's own files (the fixtures and examples: GGUF and safetensors checkpoints,
# tokenizers, configs, chat templates, split files, optimize configs and sweep plans). Builds on stable Rust: the
# coverage instrumentation is rustc's SanitizerCoverage pass, named by stable -C flags, and the build names the host
# target explicitly so that build scripts are not instrumented. The inputs kept from earlier finds
# (tests/fixtures/fuzz/TARGET/) seed their target too. A hang (10 s on one input) or a process above
# 2 GiB of memory counts as a crash. Prints, per target, executions in all and per second, the corpus size and what
# was found; exits 1 if any target found a crash, whose input is kept in fuzz/artifacts/TARGET/. A crash found
# becomes a regression file under tests/fixtures/fuzz/ with a test (tests/fuzz_regressions.rs).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
all=(gguf gguf_tokenizer tokenizer_json safetensors safetensors_index config_json split_file optimize_config
    sweep_plan chat_template)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for target in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $target "* ]] || { echo "unknown fuzz target $target (one of: ${all[*]})" >&2; exit 2; }
done

triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$triple" --bins
bin="fuzz/target/$triple/release"

# The seeds of a target, one file each, copied into its corpus.
seed() {
    local target="$1" corpus="$2"
    case "$target" in
        gguf | gguf_tokenizer) find tests/fixtures -name '*.gguf' ;;
        tokenizer_json) find tests/fixtures examples -name tokenizer.json -size -2M ;;
        safetensors) find tests/fixtures -name '*.safetensors' -size -1M ;;
        safetensors_index) find tests/fixtures -name model.safetensors.index.json ;;
        config_json) find tests/fixtures examples -name config.json ;;
        split_file) find tests/fixtures examples -name 'split*.json' ;;
        optimize_config) ls examples/tiny.toml examples/gemma3-270m.toml ;;
        sweep_plan) ls examples/table1.toml ;;
        chat_template) ;;
    esac | cat - <(find "tests/fixtures/fuzz/$target" -type f 2>/dev/null) | while read -r file; do
        cp "$file" "$corpus/seed-$(sha256sum "$file" | cut -c1-16)"
    done
    if [ "$target" = chat_template ]; then
        python3 - "$corpus" <<'EOF'
import hashlib, json, pathlib, sys
corpus = pathlib.Path(sys.argv[1])
for case in json.load(open("tests/fixtures/chat/cases.json")):
    text = case["template"].encode()
    (corpus / ("seed-" + hashlib.sha256(text).hexdigest()[:16])).write_bytes(text)
EOF
    fi
}

failed=()
printf '%-18s %12s %10s %8s  %s\n' target executions "per s" corpus found
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target/"
    mkdir -p "$corpus" "$artifacts"
    seed "$target" "$corpus"
    log="fuzz/artifacts/$target.log"
    status=0
    "$bin/$target" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    # libFuzzer's own average (a run that stops at a find prints no "Done ... in N seconds").
    per_second="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    found="nothing"
    if [ "$status" -ne 0 ]; then
        found="$(grep -m1 -o 'ERROR: libFuzzer: [a-z-]*\|SUMMARY: libFuzzer: [a-z-]*' "$log" || echo "exit $status"); \
see $log and $artifacts"
        failed+=("$target")
    fi
    printf '%-18s %12s %10s %8s  %s\n' "$target" "${runs:-?}" "${per_second:-?}" "$(ls "$corpus" | wc -l)" "$found"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes or hangs found in: ${failed[*]}" >&2
    exit 1
fi
