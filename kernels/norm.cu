// Row normalisations: layer norm (bf16 in and out, gain and bias), L2 normalisation (f32), RMS norm of rows and
// of attention heads, each twice: one thread per row or head (plain), and one block per row (one warp per head)
// with block-wide (warp-wide) reductions (fast). Both compute the mean first and
// the variance around it, as the CPU backend does.
#include "common.cuh"

extern "C" __global__ void layer_norm_plain(const bf16* __restrict__ x, const bf16* __restrict__ gain,
                                            const bf16* __restrict__ bias, bf16* __restrict__ y, int rows, int cols,
                                            float eps) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const bf16* xr = x + r * cols;
    float mean = 0.0f;
    for (int c = 0; c < cols; ++c) mean += to_f32(xr[c]);
    mean /= cols;
    float var = 0.0f;
    for (int c = 0; c < cols; ++c) {
        const float d = to_f32(xr[c]) - mean;
        var += d * d;
    }
    const float inv = rsqrtf(var / cols + eps);
    for (int c = 0; c < cols; ++c)
        y[r * cols + c] = to_bf16((to_f32(xr[c]) - mean) * inv * to_f32(gain[c]) + to_f32(bias[c]));
}

// One block (a multiple of 32 threads) per row.
extern "C" __global__ void layer_norm(const bf16* __restrict__ x, const bf16* __restrict__ gain,
                                      const bf16* __restrict__ bias, bf16* __restrict__ y, int rows, int cols,
                                      float eps) {
    __shared__ float scratch[32];
    const int64_t r = blockIdx.x;
    const bf16* xr = x + r * cols;
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += to_f32(xr[c]);
    const float mean = block_sum(sum, scratch) / cols;
    float sq = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float d = to_f32(xr[c]) - mean;
        sq += d * d;
    }
    const float inv = rsqrtf(block_sum(sq, scratch) / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        y[r * cols + c] = to_bf16((to_f32(xr[c]) - mean) * inv * to_f32(gain[c]) + to_f32(bias[c]));
}

extern "C" __global__ void l2_normalize_plain(const float* __restrict__ x, float* __restrict__ y, int rows,
                                              int cols) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float sq = 0.0f;
    for (int c = 0; c < cols; ++c) sq += x[r * cols + c] * x[r * cols + c];
    const float inv = sq > 0.0f ? 1.0f / sqrtf(sq) : 1.0f;  // a zero row stays zero, as on the CPU
    for (int c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] * inv;
}

// One block per row.
extern "C" __global__ void l2_normalize(const float* __restrict__ x, float* __restrict__ y, int rows, int cols) {
    __shared__ float scratch[32];
    const int64_t r = blockIdx.x;
    float sq = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sq += x[r * cols + c] * x[r * cols + c];
    sq = block_sum(sq, scratch);
    const float inv = sq > 0.0f ? 1.0f / sqrtf(sq) : 1.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[r * cols + c] = x[r * cols + c] * inv;
}

// bf16 to f32, elementwise (projected features leave the towers in bf16; scoring works in f32).
extern "C" __global__ void bf16_to_f32(const bf16* __restrict__ x, float* __restrict__ y, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = to_f32(x[i]);
}

// RMS norm (Llama's), optionally fused with the residual add before it: s = x + delta is rounded to bf16 (the
// residual stream is stored in bf16) and written to `sum`, then y = s / sqrt(mean(s^2) + eps) * (gain_offset +
// gain), the gain's sum formed in f32 (Gemma stores its gains less 1 and passes gain_offset 1; Llama 0). With
// `delta` null, s = x and `sum` is not written. One thread per row (plain).
extern "C" __global__ void rms_norm_plain(const bf16* __restrict__ x, const bf16* __restrict__ delta,
                                          const bf16* __restrict__ gain, bf16* __restrict__ sum,
                                          bf16* __restrict__ y, int rows, int cols, float eps, float gain_offset) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float sq = 0.0f;
    for (int c = 0; c < cols; ++c) {
        float s = to_f32(x[r * cols + c]);
        if (delta) {
            s = to_f32(to_bf16(s + to_f32(delta[r * cols + c])));
            sum[r * cols + c] = to_bf16(s);
        }
        sq += s * s;
    }
    const float inv = rsqrtf(sq / cols + eps);
    for (int c = 0; c < cols; ++c) {
        const float s = delta ? to_f32(sum[r * cols + c]) : to_f32(x[r * cols + c]);
        y[r * cols + c] = to_bf16(s * inv * (gain_offset + to_f32(gain[c])));
    }
}

// The same, one block per row: each thread keeps its columns' sums in registers between the reduction and the
// scaling (up to RMS_MAX_PER_THREAD columns each, so a row of up to 8,192 columns with 256 threads).
#define RMS_MAX_PER_THREAD 32
extern "C" __global__ void __launch_bounds__(256) rms_norm(const bf16* __restrict__ x, const bf16* __restrict__ delta,
                                                           const bf16* __restrict__ gain, bf16* __restrict__ sum,
                                                           bf16* __restrict__ y, int rows, int cols, float eps,
                                                           float gain_offset) {
    __shared__ float scratch[32];
    const int64_t r = blockIdx.x;
    float s[RMS_MAX_PER_THREAD];
    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < RMS_MAX_PER_THREAD; ++i) {
        const int c = threadIdx.x + i * blockDim.x;
        s[i] = 0.0f;
        if (c < cols) {
            float v = to_f32(x[r * cols + c]);
            if (delta) {
                const bf16 rounded = to_bf16(v + to_f32(delta[r * cols + c]));
                sum[r * cols + c] = rounded;
                v = to_f32(rounded);
            }
            s[i] = v;
            sq += v * v;
        }
    }
    const float inv = rsqrtf(block_sum(sq, scratch) / cols + eps);
#pragma unroll
    for (int i = 0; i < RMS_MAX_PER_THREAD; ++i) {
        const int c = threadIdx.x + i * blockDim.x;
        if (c < cols) y[r * cols + c] = to_bf16(s[i] * inv * (gain_offset + to_f32(gain[c])));
    }
}

// Per-head RMS norm of packed QKV rows [rows, (heads + 2 * kv_heads) * head_dim] (Gemma 3's q_norm and k_norm):
// each query head times (gain_offset + q_gain), each key head times (gain_offset + k_gain), both [head_dim]; the
// value heads are copied. Plain: one thread per (row, head), over all heads + 2 * kv_heads.
extern "C" __global__ void head_rms_norm_plain(const bf16* __restrict__ qkv, const bf16* __restrict__ q_gain,
                                               const bf16* __restrict__ k_gain, bf16* __restrict__ out, int rows,
                                               int heads, int kv_heads, int head_dim, float eps,
                                               float gain_offset) {
    const int all_heads = heads + 2 * kv_heads;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)rows * all_heads) return;
    const int h = idx % all_heads;
    const int64_t at = idx * head_dim;
    if (h >= heads + kv_heads) {
        for (int d = 0; d < head_dim; ++d) out[at + d] = qkv[at + d];
        return;
    }
    const bf16* gain = h < heads ? q_gain : k_gain;
    float sq = 0.0f;
    for (int d = 0; d < head_dim; ++d) sq += to_f32(qkv[at + d]) * to_f32(qkv[at + d]);
    const float inv = rsqrtf(sq / head_dim + eps);
    for (int d = 0; d < head_dim; ++d) out[at + d] = to_bf16(to_f32(qkv[at + d]) * inv * (gain_offset + to_f32(gain[d])));
}

// The same, one warp per (row, head): the head's sum of squares is one warp reduction, each lane normalising every
// 32nd value. Blocks of 128 threads take 4 heads.
extern "C" __global__ void __launch_bounds__(128) head_rms_norm(const bf16* __restrict__ qkv,
                                                                const bf16* __restrict__ q_gain,
                                                                const bf16* __restrict__ k_gain,
                                                                bf16* __restrict__ out, int rows, int heads,
                                                                int kv_heads, int head_dim, float eps,
                                                                float gain_offset) {
    const int all_heads = heads + 2 * kv_heads;
    const int lane = threadIdx.x & 31;
    const int64_t idx = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (idx >= (int64_t)rows * all_heads) return;
    const int h = idx % all_heads;
    const int64_t at = idx * head_dim;
    if (h >= heads + kv_heads) {
        for (int d = lane; d < head_dim; d += 32) out[at + d] = qkv[at + d];
        return;
    }
    const bf16* gain = h < heads ? q_gain : k_gain;
    float sq = 0.0f;
    for (int d = lane; d < head_dim; d += 32) sq += to_f32(qkv[at + d]) * to_f32(qkv[at + d]);
    const float inv = rsqrtf(warp_sum(sq) / head_dim + eps);
    for (int d = lane; d < head_dim; d += 32)
        out[at + d] = to_bf16(to_f32(qkv[at + d]) * inv * (gain_offset + to_f32(gain[d])));
}
