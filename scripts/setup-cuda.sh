#!/usr/bin/env bash
# Installs nvcc 13.0 (and the headers the kernels include) into .cuda/ in the repository, from PyPI, so that
# build.rs compiles the CUDA kernels. No GPU or driver is needed to build. The versions are pinned: unpinned, pip
# mixes 13.x releases whose parts do not work together, and PTX from a newer nvcc does not load on a CUDA 13.0
# driver.
#
#   bash scripts/setup-cuda.sh && cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
target=.cuda
nvcc="$target/nvidia/cu13/bin/nvcc"
if [ -x "$nvcc" ] && "$nvcc" --version | grep -q "V13.0.88"; then
    echo "nvcc 13.0.88 already in $target"
    exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --upgrade --target "$target" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.88 \
    nvidia-cuda-cccl==13.0.85
"$nvcc" --version | tail -n 2
echo "nvcc installed in $target; cargo build now compiles the kernels"
