// Rotary position embedding of packed QKV rows (rotate-half layout, as HF Llama): in every query and key head,
// the pair (x_i, x_{i+d/2}) turns by the angle position * inv_freq[i]; value heads are copied. The position of a
// row comes from its cache-row record (field 0, see attention_cached.cu), so the same launch serves prefill and
// decode. Any rope scaling (llama3, linear, ...) is already folded into inv_freq on the host. The angle is formed
// in f32 as HF does, its cosine and sine taken in f64 as the CPU reference does (the angle reaches thousands of
// radians, where a fast f32 sine would lose digits).
//
// One thread per (row, pair): the angle's cosine and sine are taken once and turn that pair in every query and
// key head; the same thread copies the pair's two columns of every value head. Memory-bound, so there is no
// separate fast variant.
#include "common.cuh"

extern "C" __global__ void rope(const bf16* __restrict__ qkv, bf16* __restrict__ out,
                                const uint32_t* __restrict__ row_records, int record_width,
                                const float* __restrict__ inv_freq, int rows, int heads, int kv_heads, int head_dim) {
    const int half = head_dim / 2;
    const int width = (heads + 2 * kv_heads) * head_dim;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)rows * half) return;
    const int64_t r = idx / half;
    const int pair = idx % half;
    const bf16* row = qkv + r * width;
    bf16* out_row = out + r * width;
    const float angle = (float)row_records[r * record_width] * inv_freq[pair];
    double sin_d, cos_d;
    sincos((double)angle, &sin_d, &cos_d);
    const float cos_a = (float)cos_d, sin_a = (float)sin_d;
    for (int h = 0; h < heads + kv_heads; ++h) {
        const int at = h * head_dim + pair;
        const float a = to_f32(row[at]), b = to_f32(row[at + half]);
        out_row[at] = to_bf16(a * cos_a - b * sin_a);
        out_row[at + half] = to_bf16(b * cos_a + a * sin_a);
    }
    for (int h = heads + kv_heads; h < heads + 2 * kv_heads; ++h) {
        const int at = h * head_dim + pair;
        out_row[at] = row[at];
        out_row[at + half] = row[at + half];
    }
}
