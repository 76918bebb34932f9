#!/usr/bin/env python3
"""Mutation check of the emulator's checks: plants one known defect at a time and requires the very check that
defect is for to report it.

    cargo build --release && python3 scripts/mutation_check.py

Kernel mutants change a copy of a kernel file (`kernels/*.cu`), compile it to PTX with the project's NVRTC (with
the options build.rs uses) and load it in place of the embedded module (GLOV_EMU_PTX_OVERRIDE). Host mutants
change the engine's source and need a binary of their own: the files git lists are mirrored into
target/mutants/tree (a file is rewritten only when its bytes differ, so that cargo sees only the mutated file as
changed), whose binary is renamed glov-cuda-mutant, and built in the release build's own target folder. The mirror
is a package at another path, so cargo compiles only the engine for it, under hashes of its own, and reuses every
dependency the release build compiled: a separate target folder would compile all of them again first, many
minutes on two cores. target/release/glov-cuda is never rebuilt or overwritten.

Each mutant runs `glov-cuda --device cuda selftest --quick` on the emulator and names the report it must produce:
a regular expression searched in the run's stdout and stderr together. A mutant is caught when the run fails and
its expected report appears. A run that fails with another report was caught by the wrong check, which fails this
script as a survivor does: a defect stopped by a check that happened to fire elsewhere proves nothing about the
check it was planted for.

Each mutant also names the selftest cases that exercise the code it changes. Where the binary's selftest takes
`--only` (case names, comma-separated), a run is limited to those cases, a few seconds each; otherwise every run
is the whole quick selftest, about five minutes on two cores for one that no check stops early.

The unmutated kernels and engine run first, on the union of the mutants' cases, and must pass with no check
firing. That control is kept (rather than skipped because CI runs the whole selftest elsewhere) because it is what
makes a match meaningful: no expected report appears on the same cases, with the same binary and the same emulator
settings, without the defect; limited to those cases it costs little.

Needs the release binary with kernels and the emulator (`cargo build --release` after scripts/setup-cuda.sh).
Prints one line per mutant with its verdict and seconds, and exits non-zero unless every mutant was caught by its
check.
"""

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NVRTC = ROOT / ".cuda/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
CUDA_INCLUDE = ROOT / ".cuda/nvidia/cuda_runtime/include"
# The options build.rs compiles every kernel file with.
NVRTC_OPTIONS = ["--gpu-architecture=compute_80", "-std=c++17", "--use_fast_math", "--generate-line-info"]
# The cargo target folder of the release build, which host mutants share: their tree is a package of its own (its
# path differs), so only the engine is compiled for them, under its own hashes, and every dependency is reused.
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
# The mirror of the source tree in which host mutants are planted, kept between runs.
HOST_TREE = TARGET / "mutants/tree"
# The mutated engine's binary name, so that cargo's copy of it never lands on the release glov-cuda.
HOST_BINARY = "glov-cuda-mutant"
# A run longer than this is a hang (a mutant that loops forever) and fails the script.
RUN_LIMIT_SECONDS = 1200
# Any check of the emulator reporting, or a selftest case failing: none may show in the unmutated run.
ANY_REPORT = re.compile(
    r"(memcheck|racecheck|initcheck|synccheck|streamcheck|undefined behaviour): |^\S+\s+cuda \S+\s.*\sNO\s",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Mutant:
    """One planted defect: `text` (which must occur exactly once in `file`) becomes `replacement`."""

    name: str
    file: str  # relative to the repository root
    text: str
    replacement: str
    expect: str  # the report that must appear: a regular expression over stdout and stderr
    cases: tuple[str, ...]  # the selftest cases that exercise the mutated code


def selftest_case_failed(kernel: str, subject: str = r"cuda \S+") -> str:
    """The selftest table's line of a failed case of `kernel` (ok column NO)."""
    return rf"(?m)^{kernel}\s+{subject}\s.*\sNO\s"


KERNEL_MUTANTS = [
    Mutant(
        "removed __syncthreads (gemm_mma: the barrier after the wait for a tile's copies)",
        "kernels/gemm.cu",
        "        // the next copies overwrite.\n        __syncthreads();\n",
        "        // the next copies overwrite.\n",
        r"racecheck: .* shared byte",
        ("linear",),
    ),
    Mutant(
        "a wait that leaves the tile about to be multiplied in flight (gemm_mma: cp.async.wait_group STAGES - 1)",
        "kernels/gemm.cu",
        "        copies_wait<STAGES - 2>();\n",
        "        copies_wait<STAGES - 1>();\n",
        r"racecheck: .*which a cp.async of thread .* still in flight writes",
        ("linear",),
    ),
    Mutant(
        "a causal mask that hides the diagonal (attention_mma: j >= i)",
        "kernels/attention.cu",
        "                if (j >= seq || (causal && j > i)) v = -INFINITY;",
        "                if (j >= seq || (causal && j >= i)) v = -INFINITY;",
        selftest_case_failed("attention", "cuda fast"),
        ("attention",),
    ),
    Mutant(
        "off-by-one in a tile bound (gemm_mma: rows <= instead of <)",
        "kernels/gemm.cu",
        "    if (j >= (upper ? rows.hi_end : rows.lo_end)) return -1;",
        "    if (j > (upper ? rows.hi_end : rows.lo_end)) return -1;",
        r"memcheck: .*past the end",
        ("linear",),
    ),
    Mutant(
        "a rope tile read as one run of a head's pairs (gemm_mma: rows from the tile's first, not per pair)",
        "kernels/gemm.cu",
        "    return (int64_t)(j / rows.half) * 2 * rows.half + j % rows.half + (upper ? rows.half : 0);",
        "    const int first = upper ? rows.hi : rows.lo;\n"
        "    return (int64_t)(first / rows.half) * 2 * rows.half + first % rows.half + i + (upper ? rows.half : 0);",
        selftest_case_failed("linear_rope_store", "cuda fast"),
        ("linear_rope_store",),
    ),
    Mutant(
        "the last block of a split tile leaves its counter set (gemm_mma: no reset for the next launch)",
        "kernels/gemm.cu",
        "        if (last) atomicExch(counter, 0u);\n",
        "",
        r"initcheck: ",
        ("linear_add_rms_norm",),
    ),
    Mutant(
        "two mma fragment registers swapped (gemm_mma: a0 and a1)",
        "kernels/tensor_core.cuh",
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, ",
        "{%0,%1,%2,%3}, {%5,%4,%6,%7}, {%8,%9}, ",
        selftest_case_failed("linear", "cuda fast"),
        ("linear",),
    ),
    Mutant(
        "wrong shfl offset (warp_sum starts at 8 lanes instead of 16)",
        "kernels/common.cuh",
        "__device__ __forceinline__ float warp_sum(float v) {\n    for (int offset = 16;",
        "__device__ __forceinline__ float warp_sum(float v) {\n    for (int offset = 8;",
        selftest_case_failed("l2_normalize", "cuda fast"),
        ("l2_normalize",),
    ),
    Mutant(
        "store past the end of a row (l2_normalize writes column c + 1)",
        "kernels/norm.cu",
        "    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[r * cols + c] = x[r * cols + c] * inv;\n}",
        "    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[r * cols + c + 1] = x[r * cols + c] * inv;\n}",
        r"memcheck: .*past the end",
        ("l2_normalize",),
    ),
    Mutant(
        "radix select run when top_k exceeds the vocabulary (sample: its bin is never found)",
        "kernels/sampling.cu",
        "    if (top_k > 0 && top_k < vocab) {",
        "    if (top_k > 0) {",
        r"initcheck: .* that no thread of the block wrote",
        ("sample_top_k_past_vocab",),
    ),
    Mutant(
        "half of an output never stored (l2_normalize_plain's store loop stops at cols / 2)",
        "kernels/norm.cu",
        "    for (int c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] * inv;",
        "    for (int c = 0; c < cols / 2; ++c) y[r * cols + c] = x[r * cols + c] * inv;",
        # The output is downloaded as it is: no kernel reads it first.
        r"initcheck: a device-to-host copy reads",
        ("l2_normalize",),
    ),
    Mutant(
        "the cascade's partial slots left unwritten for rows outside it (attention_cached_*)",
        "kernels/attention_cached.cu",
        "if (cascade && skip == 0 && blockIdx.z == 0 && d == 0) {",
        "if (false) {",
        r"initcheck: read of .* never written",
        ("attention_shared_prefix",),
    ),
    Mutant(
        "shared-prefix attention blind to sliding windows (attention_prefix_*: every row sees the whole prefix)",
        "kernels/attention_cached.cu",
        "from[j] = valid ? row_first : NO_KEY;",
        "from[j] = valid ? 0 : NO_KEY;",
        selftest_case_failed("attention_shared_prefix", "cuda fast"),
        ("attention_shared_prefix",),
    ),
    Mutant(
        "removed __syncthreads between phases sharing global scratch (sample_plain: top-p's padding and its sort)",
        "kernels/sampling.cu",
        "            for (int j = n + tid; j < m; j += threads) order[j] = ~0ull;\n            __syncthreads();\n",
        "            for (int j = n + tid; j < m; j += threads) order[j] = ~0ull;\n",
        r"racecheck: .* global byte",
        ("sample_top_k_top_p", "sample_top_p"),
    ),
    Mutant(
        "shared array overrun into its neighbour (sample clears hist[256], the first word of scan)",
        "kernels/sampling.cu",
        "            for (int b = tid; b < 256; b += SAMPLE_THREADS) hist[b] = 0;",
        "            for (int b = tid; b <= 256; b += SAMPLE_THREADS) hist[b] = 0;",
        r"memcheck: .*shared array",
        ("sample_top_k",),
    ),
]

HOST_MUTANTS = [
    Mutant(
        "a staging buffer reused without its event wait (stage_large skips wait(large.copied))",
        "src/backend/cuda/staging.rs",
        "        if let Some(large) = slot.as_ref() {\n            wait(large.copied)?;\n        }\n",
        "",
        r"streamcheck: the pinned host memory a queued copy reads",
        # Loading the CLIP model's weights takes a large staging buffer a third time.
        ("clip_images",),
    ),
]


def users_of(header: str) -> list[str]:
    """Kernel files that include `header`."""
    return sorted(p.name for p in (ROOT / "kernels").glob("*.cu") if f'#include "{header}"' in p.read_text())


def mutated(mutant: Mutant, original: str) -> str:
    count = original.count(mutant.text)
    if count != 1:
        sys.exit(f"mutant '{mutant.name}': its text occurs {count} times in {mutant.file}, not once")
    return original.replace(mutant.text, mutant.replacement)


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


def kernel_override(mutant: Mutant, folder: Path) -> Path:
    """Compiles the kernel files the mutant changes into a folder for GLOV_EMU_PTX_OVERRIDE."""
    kernels = folder / "kernels"
    shutil.copytree(ROOT / "kernels", kernels)
    path = ROOT / mutant.file
    (kernels / path.name).write_text(mutated(mutant, path.read_text()))
    files = users_of(path.name) if path.suffix == ".cuh" else [path.name]
    compile_ptx(kernels, files, folder / "ptx")
    return folder / "ptx"


def mirror_sources(mutant: Mutant) -> None:
    """Makes HOST_TREE the repository's files (as git lists them) with the mutant planted and the binary renamed
    HOST_BINARY. Only files whose bytes differ are rewritten, so that the modification times cargo compares stay
    put otherwise: rebuilding the same mutant again is a no-op."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    wanted = {name: (ROOT / name).read_bytes() for name in listed if name and (ROOT / name).is_file()}
    wanted[mutant.file] = mutated(mutant, wanted[mutant.file].decode()).encode()
    manifest = wanted["Cargo.toml"].decode()
    for text in ['default-run = "glov-cuda"', '[[bin]]\nname = "glov-cuda"']:
        if manifest.count(text) != 1:
            sys.exit(f"Cargo.toml does not hold `{text}` once: the host mutants' binary cannot be renamed")
        manifest = manifest.replace(text, text.replace("glov-cuda", HOST_BINARY))
    wanted["Cargo.toml"] = manifest.encode()
    for folder, _, files in os.walk(HOST_TREE):
        for path in (Path(folder) / file for file in files):
            if path.relative_to(HOST_TREE).as_posix() not in wanted:
                path.unlink()
    for name, content in wanted.items():
        path = HOST_TREE / name
        if not path.is_file() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    # build.rs finds the kernel compilers in .cuda/ and watches .git/HEAD and .git/index (a missing file would make
    # it run, and the engine build again, every time); git then sees the tree as a changed checkout of this commit.
    for name in [".cuda", ".git"]:
        if not (HOST_TREE / name).is_symlink():
            (HOST_TREE / name).symlink_to(ROOT / name)


def host_binary(mutant: Mutant) -> tuple[Path, float]:
    """Builds the engine with the mutant planted; returns the binary and the build's seconds."""
    mirror_sources(mutant)
    # GIT_OPTIONAL_LOCKS=0: build.rs asks git for the revision and status, which must not write the index.
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET), GIT_OPTIONAL_LOCKS="0")
    start = time.monotonic()
    build = subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "glov-cuda", "--bin", HOST_BINARY],
        cwd=HOST_TREE, env=env, capture_output=True, text=True,
    )
    if build.returncode != 0:
        sys.exit(f"building host mutant '{mutant.name}' failed:\n{build.stderr[-3000:]}")
    return TARGET / "release" / HOST_BINARY, time.monotonic() - start


def takes_case_filter(binary: Path) -> bool:
    """Whether the binary's selftest can be limited to named cases (`--only`)."""
    usage = subprocess.run([str(binary), "selftest", "--help"], capture_output=True, text=True, check=True).stdout
    return "--only" in usage


def selftest(
    binary: Path, cases: tuple[str, ...] | None, override: Path | None, log: Path
) -> tuple[int | None, str, float]:
    """Runs selftest --quick on the emulator, only `cases` unless None; returns (exit status, None if it hung;
    stdout and stderr; seconds)."""
    env = dict(os.environ)
    env.pop("GLOV_EMU_PTX_OVERRIDE", None)
    if override:
        env["GLOV_EMU_PTX_OVERRIDE"] = str(override)
    cmd = ["bash", str(ROOT / "scripts/emulated.sh"), str(binary), "--device", "cuda", "selftest", "--quick"]
    if cases is not None:
        cmd += ["--only", ",".join(cases)]
    start = time.monotonic()
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_LIMIT_SECONDS)
        status, stdout, stderr = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as hung:
        status = None
        stdout, stderr = (s.decode() if isinstance(s, bytes) else s or "" for s in (hung.stdout, hung.stderr))
    seconds = time.monotonic() - start
    log.write_text(stdout + "\n--- stderr ---\n" + stderr)
    return status, stdout + "\n" + stderr, seconds


def verdict(output: str) -> str:
    """What stopped the run: the first report of an emulator check, else the first failed selftest case, else the
    last line of output."""
    for line in output.splitlines():
        match = re.search(r"glov-emu: kernel (\S+) .*? failed: (.*)", line)
        if match:
            return f"emulator, in {match.group(1)}: {match.group(2)[:150]}"
        match = re.search(r"glov-emu: (\w+check: .*)", line)
        if match:
            return f"emulator: {match.group(1)[:170]}"
    failed = [line for line in output.splitlines() if re.search(r"\sNO\s", line)]
    if failed:
        return f"selftest: {len(failed)} case(s) failed, first: {' '.join(failed[0].split())[:120]}"
    last = [line for line in output.splitlines() if line.strip()]
    return last[-1][:160] if last else "no output"


def judge(status: int | None, output: str, expect: str) -> tuple[bool, str]:
    """(caught by its check, the verdict word)."""
    if status is None:
        return False, f"HUNG (over {RUN_LIMIT_SECONDS} s)"
    if status == 0:
        return False, "SURVIVED"
    if re.search(expect, output):
        return True, "caught"
    return False, "caught by the WRONG CHECK"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=TARGET / "release/glov-cuda")
    parser.add_argument("--logs", type=Path, help="folder for each run's output (default: a temporary folder)")
    parser.add_argument("--only", help="run only the mutants whose name contains this text")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each verdict as it comes, also into a CI log
    if not NVRTC.is_file():
        sys.exit(f"{NVRTC} is missing: run scripts/setup-cuda.sh")
    logs = args.logs or Path(tempfile.mkdtemp(prefix="glov-mutants-"))
    logs.mkdir(parents=True, exist_ok=True)
    chosen = [(kind, m) for kind, ms in (("kernel", KERNEL_MUTANTS), ("host", HOST_MUTANTS)) for m in ms]
    chosen = [(kind, m) for kind, m in chosen if not args.only or args.only in m.name]
    started = time.monotonic()
    filtered = takes_case_filter(args.binary)
    if not filtered:
        print("this selftest takes no --only: every run is the whole quick selftest")

    union = tuple(sorted({case for _, m in chosen for case in m.cases}))
    status, output, seconds = selftest(args.binary, union if filtered else None, None, logs / "unmutated.log")
    clean = status == 0 and not ANY_REPORT.search(output)
    scope = f", cases {', '.join(union)}" if filtered else ""
    print(f"unmutated{scope}: {'pass' if clean else 'FAIL'} ({seconds:.1f} s)")
    if not clean:
        print(f"  the unmutated run must pass with no check firing: {verdict(output)} (log {logs / 'unmutated.log'})")
        return 1

    failures = 0
    for i, (kind, mutant) in enumerate(chosen, 1):
        log = logs / f"mutant-{i}.log"
        build = ""
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "kernel":
                override, binary = kernel_override(mutant, Path(tmp)), args.binary
            else:
                (binary, build_seconds), override = host_binary(mutant), None
                build = f", build {build_seconds:.0f} s"
            status, output, seconds = selftest(binary, mutant.cases if filtered else None, override, log)
        caught, word = judge(status, output, mutant.expect)
        failures += not caught
        print(f"mutant {i} ({kind}): {mutant.name}: {word} ({seconds:.1f} s{build})")
        print(f"  expected /{mutant.expect}/; got: {verdict(output) if status != 0 else 'the selftest passed'}")
    print(
        f"{len(chosen) - failures} of {len(chosen)} mutants caught by their check in "
        f"{time.monotonic() - started:.0f} s; logs in {logs}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
