// The gated MLP activations: rows [gate (f), up (f)] become silu(gate) * up (Llama family) or gelu_tanh(gate) * up
// (Gemma), [f]. One thread per output element: memory-bound, so there is no separate fast variant.
#include "common.cuh"

extern "C" __global__ void silu_mul(const bf16* __restrict__ gate_up, bf16* __restrict__ out, int rows, int f) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)rows * f) return;
    const int64_t r = idx / f;
    const int c = idx % f;
    const float g = to_f32(gate_up[r * 2 * f + c]), u = to_f32(gate_up[r * 2 * f + f + c]);
    out[idx] = to_bf16(g / (1.0f + expf(-g)) * u);
}

extern "C" __global__ void gelu_tanh_mul(const bf16* __restrict__ gate_up, bf16* __restrict__ out, int rows, int f) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)rows * f) return;
    const int64_t r = idx / f;
    const int c = idx % f;
    const float g = to_f32(gate_up[r * 2 * f + c]), u = to_f32(gate_up[r * 2 * f + f + c]);
    out[idx] = to_bf16(activate(g, ACT_GELU_TANH) * u);
}
