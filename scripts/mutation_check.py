#!/usr/bin/env python3
"""Mutation check of the emulator: plants one defect at a time in a copy of a kernel file, compiles that copy to
PTX with the project's NVRTC (as build.rs does), and runs `glov-cuda --device cuda selftest --quick` on the emulator with the mutated
module in place of the embedded one (GLOV_EMU_PTX_OVERRIDE). Every mutant must make selftest fail; the unmutated
kernels must pass. Prints one line per mutant with what caught it, and exits non-zero if a mutant survived.

    cargo build --release && python3 scripts/mutation_check.py

Needs the release binary with kernels and the emulator (`cargo build --release` after scripts/setup-cuda.sh).
"""

import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NVRTC = ROOT / ".cuda/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
CUDA_INCLUDE = ROOT / ".cuda/nvidia/cuda_runtime/include"
# The options build.rs compiles every kernel file with.
NVRTC_OPTIONS = ["--gpu-architecture=compute_80", "-std=c++17", "--use_fast_math", "--generate-line-info"]

# (name, kernel file, exact text, replacement): each text must occur exactly once.
MUTANTS = [
    (
        "removed __syncthreads (gemm_mma: the barrier after the tile loads)",
        "gemm.cu",
        "        load_tile(ws, w, col0, N, k0, K, tid);\n        __syncthreads();\n",
        "        load_tile(ws, w, col0, N, k0, K, tid);\n",
    ),
    (
        "off-by-one in a tile bound (gemm_mma: rows <= instead of <)",
        "gemm.cu",
        "            if (g < rows && gk < K) v = *reinterpret_cast<const uint4*>(src + (int64_t)g * K + gk);",
        "            if (g <= rows && gk < K) v = *reinterpret_cast<const uint4*>(src + (int64_t)g * K + gk);",
    ),
    (
        "two mma fragment registers swapped (gemm_mma: a0 and a1)",
        "gemm.cu",
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, ",
        "{%0,%1,%2,%3}, {%5,%4,%6,%7}, {%8,%9}, ",
    ),
    (
        "wrong shfl offset (warp_sum starts at 8 lanes instead of 16)",
        "common.cuh",
        "__device__ __forceinline__ float warp_sum(float v) {\n    for (int offset = 16;",
        "__device__ __forceinline__ float warp_sum(float v) {\n    for (int offset = 8;",
    ),
    (
        "store past the end of a row (l2_normalize writes column c + 1)",
        "norm.cu",
        "    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[r * cols + c] = x[r * cols + c] * inv;\n}",
        "    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[r * cols + c + 1] = x[r * cols + c] * inv;\n}",
    ),
    (
        "radix select run when top_k exceeds the vocabulary (sample: its bin is never found)",
        "sampling.cu",
        "    if (top_k > 0 && top_k < vocab) {",
        "    if (top_k > 0) {",
    ),
]


def users_of(header: str) -> list[str]:
    """Kernel files that include `header`."""
    return sorted(p.name for p in (ROOT / "kernels").glob("*.cu") if f'#include "{header}"' in p.read_text())


def compile_ptx(kernels: Path, files: list[str], out: Path) -> None:
    nvrtc = ctypes.CDLL(str(NVRTC))
    out.mkdir(parents=True, exist_ok=True)
    options = [o.encode() for o in NVRTC_OPTIONS + [f"-I{kernels}", f"-I{CUDA_INCLUDE}"]]
    for name in files:
        program = ctypes.c_void_p()
        source = (kernels / name).read_text().encode()
        if nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, str(kernels / name).encode(), 0, None, None):
            raise RuntimeError(f"NVRTC could not create a program for {name}")
        status = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
        size = ctypes.c_size_t()
        if status:
            nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nvrtc.nvrtcGetProgramLog(program, log)
            raise RuntimeError(f"NVRTC of {name} failed:\n{log.value.decode()}")
        nvrtc.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetPTX(program, ptx)
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
        (out / (Path(name).stem + ".ptx")).write_bytes(ptx.value)


def selftest(binary: Path, override: Path | None, log: Path) -> tuple[int, str, float]:
    """Runs selftest --quick on the emulator; returns (exit status, what caught the defect, seconds)."""
    env = dict(os.environ)
    if override:
        env["GLOV_EMU_PTX_OVERRIDE"] = str(override)
    cmd = ["bash", str(ROOT / "scripts/emulated.sh"), str(binary), "--device", "cuda", "selftest", "--quick"]
    start = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    log.write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
    return result.returncode, verdict(result.stdout, result.stderr), seconds


def verdict(stdout: str, stderr: str) -> str:
    """The emulator check that stopped a kernel, else the first selftest case that failed."""
    for line in stderr.splitlines():
        match = re.search(r"glov-emu: kernel (\S+) .*? failed: (.*)", line)
        if match:
            return f"emulator, in {match.group(1)}: {match.group(2)[:150]}"
    failed = [line for line in stdout.splitlines() if re.search(r"\sNO\s", line)]
    if failed:
        return f"selftest: {len(failed)} case(s) failed, first: {' '.join(failed[0].split())[:120]}"
    last = [line for line in stderr.splitlines() if line.strip()]
    return last[-1][:160] if last else "no failure"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=ROOT / "target/release/glov-cuda")
    parser.add_argument("--logs", type=Path, help="folder for each run's output (default: a temporary folder)")
    parser.add_argument("--only", help="run only the mutants whose name contains this text")
    args = parser.parse_args()
    if not NVRTC.is_file():
        sys.exit(f"{NVRTC} is missing: run scripts/setup-cuda.sh")
    logs = args.logs or Path(tempfile.mkdtemp(prefix="glov-mutants-"))
    logs.mkdir(parents=True, exist_ok=True)

    status, what, seconds = selftest(args.binary, None, logs / "unmutated.log")
    print(f"unmutated kernels: {'pass' if status == 0 else 'FAIL'} ({seconds:.0f} s)")
    if status != 0:
        print(f"  the unmutated selftest must pass first: {what} (log {logs / 'unmutated.log'})")
        return 1
    survivors = 0
    chosen = [(i, m) for i, m in enumerate(MUTANTS, 1) if not args.only or args.only in m[0]]
    for i, (name, file, text, replacement) in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            kernels = Path(tmp) / "kernels"
            kernels.mkdir()
            for source in (ROOT / "kernels").iterdir():
                (kernels / source.name).write_text(source.read_text())
            original = (kernels / file).read_text()
            count = original.count(text)
            if count != 1:
                sys.exit(f"mutant {i} ({name}): its text occurs {count} times in kernels/{file}, not once")
            (kernels / file).write_text(original.replace(text, replacement))
            files = users_of(file) if file.endswith(".cuh") else [file]
            compile_ptx(kernels, files, Path(tmp) / "ptx")
            status, what, seconds = selftest(args.binary, Path(tmp) / "ptx", logs / f"mutant-{i}.log")
        caught = status != 0
        survivors += not caught
        print(f"mutant {i}: {name}: {'caught' if caught else 'SURVIVED'} ({seconds:.0f} s)\n  {what}")
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants caught; logs in {logs}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
