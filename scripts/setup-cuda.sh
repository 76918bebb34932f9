#!/usr/bin/env bash
# Installs the CUDA 12.2 kernel compilers into .cuda/ in the repository, from PyPI, so that build.rs compiles the
# CUDA kernels: NVRTC 12.2 (CUDA C++ to PTX), the CUDA 12.2 headers it compiles against, and ptxas 12.2 (PTX to
# machine code for sm_80, sm_86, sm_89 and sm_90). No GPU or driver is needed to build. CUDA 12.2 writes PTX ISA
# 8.2, which every driver since R535 (CUDA 12.2) loads. The versions are pinned: unpinned, pip mixes releases whose
# parts do not work together, and a newer compiler writes PTX that older drivers refuse.
#
#   bash scripts/setup-cuda.sh && cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
target=.cuda
version=12.2.140
ptxas="$target/nvidia/cuda_nvcc/bin/ptxas"
nvrtc="$target/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
if [ -x "$ptxas" ] && [ -f "$nvrtc" ] && "$ptxas" --version | grep -q "V$version"; then
    echo "NVRTC and ptxas $version already in $target"
    exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --upgrade --target "$target" \
    "nvidia-cuda-nvrtc-cu12==$version" "nvidia-cuda-runtime-cu12==$version" "nvidia-cuda-nvcc-cu12==$version"
"$ptxas" --version | tail -n 2
echo "NVRTC and ptxas $version installed in $target; cargo build now compiles the kernels"
