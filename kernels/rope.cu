// Rotary position embedding of packed QKV rows (rotate-half layout, as HF Llama): in every query and key head,
// the pair (x_i, x_{i+d/2}) turns by the angle position * inv_freq[i]; value heads are copied. The position of a
// row comes from its cache-row record (field 0, see attention_cached.cu), so the same launch serves prefill and
// decode. Any rope scaling (llama3, linear, ...) is already folded into inv_freq on the host. The angle is formed
// in f32 as HF does, its cosine and sine taken in f64 as the CPU reference does (the angle reaches thousands of
// radians, where a fast f32 sine would lose digits).
//
// One thread per output element: memory-bound, so there is no separate fast variant.
#include "common.cuh"

extern "C" __global__ void rope(const bf16* __restrict__ qkv, bf16* __restrict__ out,
                                const uint32_t* __restrict__ row_records, int record_width,
                                const float* __restrict__ inv_freq, int rows, int heads, int kv_heads, int head_dim) {
    const int width = (heads + 2 * kv_heads) * head_dim;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)rows * width) return;
    const int64_t r = idx / width;
    const int c = idx % width;
    const bf16* row = qkv + r * width;
    if (c >= (heads + kv_heads) * head_dim) {  // a value head
        out[idx] = row[c];
        return;
    }
    const int half = head_dim / 2;
    const int in_head = c % head_dim, head_start = c - in_head;
    const int pair = in_head % half;
    const float angle = (float)row_records[r * record_width] * inv_freq[pair];
    double sin_d, cos_d;
    sincos((double)angle, &sin_d, &cos_d);
    const float cos_a = (float)cos_d, sin_a = (float)sin_d;
    const float a = to_f32(row[head_start + pair]), b = to_f32(row[head_start + pair + half]);
    out[idx] = to_bf16(in_head < half ? a * cos_a - b * sin_a : b * cos_a + a * sin_a);
}
