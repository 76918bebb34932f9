// Random benchmark weights made on the device, value for value the stream of src/random_normal.rs: value i is
// mean + std * sqrt(3) * (u0 + u1 + u2 + u3 - 2), with u_j the top 24 bits of mix64(seed + (4i + j + 1) * G) over
// 2^24. The additions and products are written with explicit rounding so that no fused multiply-add changes a bit.
#include "common.cuh"

__device__ __forceinline__ float uniform24(uint64_t seed, uint64_t counter) {
    const uint64_t bits = mix64(seed + (counter + 1) * SPLITMIX_GAMMA);
    return (float)(bits >> 40) * 0x1p-24f;  // exact: a 24-bit integer times a power of two
}

// `scale` is std * sqrt(3), rounded to f32 on the host as the CPU stream does.
extern "C" __global__ void random_normal_bf16(bf16* __restrict__ out, int64_t n, uint64_t seed, float mean,
                                              float scale) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const uint64_t c = 4 * (uint64_t)i;
    float sum = __fadd_rn(uniform24(seed, c), uniform24(seed, c + 1));
    sum = __fadd_rn(sum, uniform24(seed, c + 2));
    sum = __fadd_rn(sum, uniform24(seed, c + 3));
    out[i] = to_bf16(__fadd_rn(mean, __fmul_rn(scale, __fsub_rn(sum, 2.0f))));
}
