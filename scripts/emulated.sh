#!/usr/bin/env bash
# Runs a command against glov-emu, the stand-in CUDA driver that executes the kernels' PTX on the CPU:
#
#   scripts/emulated.sh target/release/glov-cuda --device cuda selftest --quick
#
# It builds nothing: `cargo build --release` makes target/release/libglov_emu.so. The script links libcuda.so and
# libcuda.so.1 to it in target/release/emu-driver/, puts that folder first on LD_LIBRARY_PATH, sets
# GLOV_CUDA_DEBUG_ALLOC=1 unless it is set (every arena block its own allocation, so that memcheck sees the blocks'
# bounds), and runs the command.
#
# The emulator reads these variables once, at cuInit (an invalid value is reported and cuInit fails):
#   GLOV_EMU_CC              compute capability posed as: 9.0 (default, an H100 SXM) or 8.0 (an A100 SXM)
#   GLOV_EMU_MEMORY          device memory in GiB (default 4; fractions allowed)
#   GLOV_EMU_DRIVER_VERSION  driver version reported (default 13000); decides the newest PTX ISA loaded
#                            (13000: 9.0, 12090: 8.8, 12080: 8.7, 12060/12050: 8.5, ..., 12000: 8.0)
#   GLOV_EMU_SM_COUNT        multiprocessors (default 132 for 9.0, 108 for 8.0)
#   GLOV_EMU_THREADS         host threads that run blocks (default: every core)
#   GLOV_EMU_CHECKS          memcheck,racecheck,synccheck,initcheck (default: all four), a subset, all, or none
#   GLOV_EMU_SCHEDULE_SEED   unset: lanes and warps run lowest program counter first; a number: an order varied
#                            from that seed, and when queued stream work runs
#   GLOV_EMU_STREAMS         when queued stream work runs: late (default: only when waited for), eager (when
#                            enqueued), or seeded (chosen from the schedule seed; the default when one is set)
#   GLOV_EMU_POISON          1 (default): new device memory, registers and local memory hold NaN bytes; 0: zeros
#   GLOV_EMU_COUNTERS        a file that receives the per-kernel counters as JSON at exit
#   GLOV_EMU_SUMMARY=1       one line of totals on stderr at exit
#   GLOV_EMU_LAUNCH_LOG      a file that gets one JSON line per launch (kernel, grid, block, counters)
#   GLOV_EMU_PTX_OVERRIDE    a folder of .ptx files; a loaded module is replaced by the file declaring the same
#                            kernels (scripts/mutation_check.py plants defects this way)
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: scripts/emulated.sh COMMAND [ARGS...]  (runs COMMAND with the emulator as libcuda.so)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release="${CARGO_TARGET_DIR:-$root/target}/release"
library="$release/libglov_emu.so"
if [ ! -f "$library" ]; then
    echo "scripts/emulated.sh: $library is missing: run \`cargo build --release\` at $root first" >&2
    exit 1
fi

driver="$release/emu-driver"
mkdir -p "$driver"
for name in libcuda.so libcuda.so.1; do
    ln -sfn "$library" "$driver/$name"
done

export LD_LIBRARY_PATH="$driver${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GLOV_CUDA_DEBUG_ALLOC="${GLOV_CUDA_DEBUG_ALLOC:-1}"
exec "$@"
