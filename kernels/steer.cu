// Steering: the offset add at block L's output, and the mean pooling of block-L outputs that guidance vectors are
// made from. Memory-bound, one version each.
#include "common.cuh"

// out[rows[j], :] += offsets[j, :] (f32 offsets, added in f32 and rounded to bf16); `out` already holds a copy of
// the input. With `rows` null, row j itself. Grid (n, ceil(cols / blockDim.x)). Rows are distinct.
extern "C" __global__ void add_rows(bf16* __restrict__ out, const uint32_t* __restrict__ rows,
                                    const float* __restrict__ offsets, int n, int cols) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t j = blockIdx.x;
    if (c >= cols || j >= n) return;
    const int64_t at = (rows ? (int64_t)rows[j] : j) * cols + c;
    out[at] = to_bf16(to_f32(out[at]) + offsets[j * cols + c]);
}

// out[s, :] = mean of x[start_s .. start_s + len_s, :] in f32, segments given as (start, len) pairs. Grid
// (segments, ceil(cols / blockDim.x)).
extern "C" __global__ void mean_rows(const bf16* __restrict__ x, const uint32_t* __restrict__ segments,
                                     float* __restrict__ out, int n, int cols) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t s = blockIdx.x;
    if (c >= cols || s >= n) return;
    const int64_t start = segments[2 * s], len = segments[2 * s + 1];
    float total = 0.0f;
    for (int64_t r = start; r < start + len; ++r) total += to_f32(x[r * cols + c]);
    out[s * cols + c] = total / (float)len;
}
