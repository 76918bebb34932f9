// Next-token sampling: one token per row of logits [rows, vocab] (bf16 or f32), as src/sampling.rs defines it.
// Greedy is the first-index argmax with NaN as -inf. Otherwise, on each row: NaN -> -inf; the temperature (an f32
// divide, only when it is not 1); top-k keeping every tie with the k-th value; top-p as transformers'
// TopPLogitsWarper (candidates sorted ascending by (value, index), f32 probabilities, an f64 running sum rounded to
// f32 and compared with the threshold `top_p_threshold`); the softmax; and the inverse-CDF draw in index order with
// target u * total, u the row's SequenceRng uniform at its step. One block per row; only the token is written.
//
// The build compiles with --use_fast_math (flush-to-zero, approximate f32 division). What must match the host bit
// for bit stays clear of it: comparisons of scores go through integer keys of their f32 bits, and the f32 divide,
// subtract and the f32 <-> f64 conversions are PTX without .ftz. f64 arithmetic is not affected by fast math.
// Both kernels take exp(double) from CUDA (within 1 ulp) where the host takes glibc's (correctly rounded nearly
// always): in rare cases an exponential differs in its last f64 bit, which can move a probability by one f32 ulp.
#include "common.cuh"

#define SAMPLE_THREADS 512   // the fast kernel's block
#define PLAIN_THREADS 256    // the plain kernel's block
#define CANDIDATES 4096      // top-p candidates the fast kernel sorts in shared memory
#define PER_THREAD (CANDIDATES / SAMPLE_THREADS)
#define SCAN_ITEMS 16        // consecutive tokens per thread in the fast kernel's inverse-CDF scan
#define STAGE 2048           // f64 values staged in shared memory for the plain kernel's serial sums
#define OVERFLOW_TOKEN 0xFFFFFFFEu  // the fast kernel's answer when the top-p candidates do not fit
#define NEG_INF_KEY 0x007FFFFFu     // order_key(-inf)
#define POS_INF_KEY 0xFF800000u     // order_key(+inf)
#define FULL_MASK 0xFFFFFFFFu

typedef unsigned long long u64;

// ---- exact f32 / f64 steps (no flush-to-zero, no approximation) ----

__device__ __forceinline__ float div_exact(float a, float b) {
    float r;
    asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

__device__ __forceinline__ float sub_exact(float a, float b) {
    float r;
    asm("sub.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

__device__ __forceinline__ double widen(float a) {
    double r;
    asm("cvt.f64.f32 %0, %1;" : "=d"(r) : "f"(a));
    return r;
}

__device__ __forceinline__ float narrow(double a) {
    float r;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(r) : "d"(a));
    return r;
}

__device__ __forceinline__ float neg_inf() { return __uint_as_float(0xFF800000u); }

__device__ __forceinline__ bool is_nan(float v) { return (__float_as_uint(v) & 0x7FFFFFFFu) > 0x7F800000u; }

// The total order of f32 (Rust's total_cmp, -0 before +0) as an unsigned order; for non-NaN values.
__device__ __forceinline__ uint32_t order_key(float v) {
    const uint32_t b = __float_as_uint(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The IEEE order (-0 == +0) as an unsigned order: order_key with -0 taken as +0; for non-NaN values.
__device__ __forceinline__ uint32_t value_key(float v) {
    return __float_as_uint(v) == 0x80000000u ? 0x80000000u : order_key(v);
}

__device__ __forceinline__ float key_value(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

// a > b for a, b >= 0 (the bit patterns of non-negative floats are ordered like their values).
__device__ __forceinline__ bool greater_non_negative(float a, float b) {
    return __float_as_uint(a) > __float_as_uint(b);
}

// Top-p's sort key: (total order of the score, index), unique per token.
__device__ __forceinline__ u64 sort_key(float s, int i) { return ((u64)order_key(s) << 32) | (uint32_t)i; }

__device__ __forceinline__ int next_pow2(int n) { return n <= 1 ? 1 : 1 << (32 - __clz(n - 1)); }

// ---- the random stream (SequenceRng) ----

// SequenceRng::uniform: the top 53 bits of mix(key + (step + 1) * G) times 2^-53 (both steps exact).
__device__ __forceinline__ double uniform(u64 key, u64 step) {
    const u64 bits = mix64(key + (step + 1) * SPLITMIX_GAMMA);
    return (double)(bits >> 11) * 0x1.0p-53;
}

// ---- one row of logits ----

struct Row {
    const void* logits;  // this row's first logit
    int is_bf16, vocab, apply_temperature;
    float temperature;
};

__device__ __forceinline__ Row make_row(const void* logits, int is_bf16, int vocab, int64_t row,
                                        int apply_temperature, float temperature) {
    Row r;
    r.logits = (const char*)logits + row * vocab * (is_bf16 ? 2 : 4);
    r.is_bf16 = is_bf16;
    r.vocab = vocab;
    r.apply_temperature = apply_temperature;
    r.temperature = temperature;
    return r;
}

// The logit with NaN as -inf (bf16 widened exactly).
__device__ __forceinline__ float logit(const Row& r, int i) {
    const float v = r.is_bf16 ? __uint_as_float((uint32_t)((const uint16_t*)r.logits)[i] << 16)
                              : ((const float*)r.logits)[i];
    return is_nan(v) ? neg_inf() : v;
}

// The score that filtering starts from: the logit divided by the temperature (in f32, when it is not 1).
__device__ __forceinline__ float score(const Row& r, int i) {
    const float v = logit(r, i);
    return r.apply_temperature ? div_exact(v, r.temperature) : v;
}

// ---- block-wide helpers ----

template <typename T> struct MaxOp {
    __device__ __forceinline__ T operator()(T a, T b) const { return a > b ? a : b; }
};
template <typename T> struct MinOp {
    __device__ __forceinline__ T operator()(T a, T b) const { return a < b ? a : b; }
};
template <typename T> struct SumOp {
    __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

// Reduction over the block (blockDim.x a multiple of 32); every thread gets the same bits (the butterfly gives
// every lane the same tree, and addition is commutative). `scratch` holds 32 values of shared memory; the block may
// call this again right after it returns.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T identity, T* scratch, Op op) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(FULL_MASK, v, offset));
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : identity;
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// Inclusive prefix sum over the block in thread order (Hillis-Steele in each warp, then over the warps' totals).
// `scratch` holds 32 doubles of shared memory; the block may call this again right after it returns.
__device__ __forceinline__ double block_inclusive_sum(double v, double* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int offset = 1; offset < 32; offset <<= 1) {
        const double t = __shfl_up_sync(FULL_MASK, v, offset);
        if (lane >= offset) v += t;
    }
    __syncthreads();
    if (lane == 31) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double w = lane < warps ? scratch[lane] : 0.0;
        for (int offset = 1; offset < 32; offset <<= 1) {
            const double t = __shfl_up_sync(FULL_MASK, w, offset);
            if (lane >= offset) w += t;
        }
        if (lane < warps) scratch[lane] = w;
    }
    __syncthreads();
    return warp > 0 ? scratch[warp - 1] + v : v;
}

// Ascending bitonic sort of a[0, m) (m a power of two) by the whole block, in shared or global memory. The caller
// synchronises after writing `a`; the sort ends synchronised.
__device__ void bitonic_sort(u64* a, int m) {
    for (int k = 2; k <= m; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < m; i += blockDim.x) {
                const int partner = i ^ j;
                if (partner > i) {
                    const u64 x = a[i], y = a[partner];
                    const bool ascending = (i & k) == 0;
                    if ((x > y) == ascending) {
                        a[i] = y;
                        a[partner] = x;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// ================================================================================================================
// sample_plain: the reference. It follows src/sampling.rs step by step on a copy of the row in global scratch:
// scores (f32, vocab), work (f64, vocab) and order (u64, a power of two >= the top-p candidates). Everything
// elementwise or order-free (divides, exponentials, counts, maxima) is spread over the block; every sum whose
// rounding depends on its order is one thread's loop in the host's order, over values staged through shared
// memory, so the sums are bit-identical to the host's. Top-k finds the k-th largest value key bit by bit (the
// largest key K with count(key >= K) >= k); top-p sorts its candidates by (total order, index) with a bitonic sort.
// One block of PLAIN_THREADS per row; grid (rows).
// ================================================================================================================

// Number of i in [0, n) with pred(i).
template <typename Pred>
__device__ unsigned block_count(int n, unsigned* counter, Pred pred) {
    if (threadIdx.x == 0) *counter = 0;
    __syncthreads();
    unsigned local = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) local += pred(i) ? 1u : 0u;
    atomicAdd(counter, local);
    __syncthreads();
    const unsigned c = *counter;
    __syncthreads();
    return c;
}

// The sum of a[0, n) in index order from 0.0, as Rust's iter().sum() (one thread adds; the block stages).
__device__ double staged_sum(const double* a, int n, double* stage, double* result) {
    double s = 0.0;
    for (int base = 0; base < n; base += STAGE) {
        const int len = min(STAGE, n - base);
        for (int j = threadIdx.x; j < len; j += blockDim.x) stage[j] = a[base + j];
        __syncthreads();
        if (threadIdx.x == 0)
            for (int j = 0; j < len; ++j) s += stage[j];
        __syncthreads();
    }
    if (threadIdx.x == 0) *result = s;
    __syncthreads();
    s = *result;
    __syncthreads();
    return s;
}

// Thread 0 calls visit(j, a[j]) for j = 0, 1, ... < n in order until it returns true; the block stages the values.
template <typename Visit>
__device__ void staged_visit(const double* a, int n, double* stage, unsigned* stop, Visit visit) {
    if (threadIdx.x == 0) *stop = 0;
    for (int base = 0; base < n; base += STAGE) {
        const int len = min(STAGE, n - base);
        for (int j = threadIdx.x; j < len; j += blockDim.x) stage[j] = a[base + j];
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int j = 0; j < len; ++j) {
                if (visit(base + j, stage[j])) {
                    *stop = 1;
                    break;
                }
            }
        }
        __syncthreads();
        if (*stop) break;
    }
    __syncthreads();
}

extern "C" __global__ void __launch_bounds__(PLAIN_THREADS)
sample_plain(const void* __restrict__ logits, int is_bf16, int vocab, const u64* __restrict__ keys,
             const u64* __restrict__ steps, int apply_temperature, float temperature, int top_k, int top_p_on,
             float threshold, int greedy, float* scores_all, u64* order_all, int order_len, double* work_all,
             unsigned int* __restrict__ out) {
    __shared__ double stage[STAGE];
    __shared__ unsigned counter, stop, top_key_sh, removed_sh;
    __shared__ int token_sh;
    __shared__ u64 best_sh;
    __shared__ double value_sh;
    const int tid = threadIdx.x, threads = blockDim.x;
    const int64_t r = blockIdx.x;
    const Row row = make_row(logits, is_bf16, vocab, r, apply_temperature, temperature);

    if (greedy) {
        // Each thread runs the host's argmax loop over its own slice; the slices' winners are combined by the
        // largest (value key, -index): a larger value, or the same value at a lower index.
        if (tid == 0) best_sh = 0;
        __syncthreads();
        const int per = (vocab + threads - 1) / threads;
        const int begin = min(vocab, tid * per), end = min(vocab, begin + per);
        int best = begin;
        uint32_t best_key = NEG_INF_KEY;
        for (int i = begin; i < end; ++i) {
            const uint32_t key = value_key(logit(row, i));
            if (key > best_key) {
                best = i;
                best_key = key;
            }
        }
        if (begin < end) atomicMax(&best_sh, ((u64)best_key << 32) | (0xFFFFFFFFu - (uint32_t)best));
        __syncthreads();
        if (tid == 0) out[r] = 0xFFFFFFFFu - (uint32_t)best_sh;
        return;
    }

    float* scores = scores_all + r * vocab;
    u64* order = order_all + r * order_len;
    double* work = work_all + r * vocab;

    // 1-2. NaN -> -inf, temperature.
    for (int i = tid; i < vocab; i += threads) scores[i] = score(row, i);
    __syncthreads();

    // 3. Top-k: the k-th largest value key, then everything below it becomes -inf.
    if (top_k > 0) {
        uint32_t kth = 0;
        for (int bit = 31; bit >= 0; --bit) {
            const uint32_t trial = kth | (1u << bit);
            const unsigned at_least =
                block_count(vocab, &counter, [&](int i) { return value_key(scores[i]) >= trial; });
            if (at_least >= (unsigned)top_k) kth = trial;
        }
        for (int i = tid; i < vocab; i += threads)
            if (value_key(scores[i]) < kth) scores[i] = neg_inf();
        __syncthreads();
    }

    // 4. Top-p over the tokens above -inf, sorted ascending by (value in total order, index).
    if (top_p_on) {
        if (tid == 0) counter = 0;
        __syncthreads();
        for (int i = tid; i < vocab; i += threads)
            if (value_key(scores[i]) != NEG_INF_KEY) order[atomicAdd(&counter, 1u)] = sort_key(scores[i], i);
        __syncthreads();
        const int n = counter;
        __syncthreads();
        if (n >= 2) {
            const int m = next_pow2(n);
            for (int j = n + tid; j < m; j += threads) order[j] = ~0ull;
            __syncthreads();
            bitonic_sort(order, m);
            // The softmax of the sorted scores, as the host's softmax(): the largest is the last.
            const float top = key_value((uint32_t)(order[n - 1] >> 32));
            if (order_key(top) == POS_INF_KEY) {
                const unsigned inf =
                    block_count(n, &counter, [&](int j) { return (uint32_t)(order[j] >> 32) == POS_INF_KEY; });
                const float share = narrow(__ddiv_rn(1.0, (double)inf));
                for (int j = tid; j < n; j += threads)
                    work[j] = (uint32_t)(order[j] >> 32) == POS_INF_KEY ? widen(share) : 0.0;
            } else {
                for (int j = tid; j < n; j += threads)
                    work[j] = exp(widen(sub_exact(key_value((uint32_t)(order[j] >> 32)), top)));
                __syncthreads();
                const double sum = staged_sum(work, n, stage, &value_sh);
                for (int j = tid; j < n; j += threads) work[j] = widen(narrow(__ddiv_rn(work[j], sum)));
            }
            __syncthreads();
            // Remove from the smallest up while the running sum, rounded to f32, stays <= the threshold; the
            // largest is always kept.
            double cumulative = 0.0;
            unsigned removed = 0;
            staged_visit(work, n - 1, stage, &stop, [&](int, double p) {
                cumulative += p;
                if (greater_non_negative(narrow(cumulative), threshold)) return true;
                ++removed;
                return false;
            });
            if (tid == 0) removed_sh = removed;
            __syncthreads();
            const unsigned cut = removed_sh;
            for (unsigned j = tid; j < cut; j += threads) scores[(uint32_t)order[j]] = neg_inf();
            __syncthreads();
        }
    }

    // 5. Softmax in index order.
    if (tid == 0) top_key_sh = 0;
    __syncthreads();
    {
        uint32_t local = 0;
        for (int i = tid; i < vocab; i += threads) local = max(local, value_key(scores[i]));
        atomicMax(&top_key_sh, local);
    }
    __syncthreads();
    const uint32_t top_key = top_key_sh;
    if (top_key == NEG_INF_KEY) {  // nothing above -inf: a one-hot at 0
        if (tid == 0) out[r] = 0;
        return;
    }
    if (top_key == POS_INF_KEY) {  // the +inf entries share the mass
        const unsigned inf = block_count(vocab, &counter, [&](int i) { return order_key(scores[i]) == POS_INF_KEY; });
        const float share = narrow(__ddiv_rn(1.0, (double)inf));
        for (int i = tid; i < vocab; i += threads) work[i] = order_key(scores[i]) == POS_INF_KEY ? widen(share) : 0.0;
    } else {
        const float top = key_value(top_key);
        for (int i = tid; i < vocab; i += threads) work[i] = exp(widen(sub_exact(scores[i], top)));
        __syncthreads();
        const double sum = staged_sum(work, vocab, stage, &value_sh);
        for (int i = tid; i < vocab; i += threads) work[i] = widen(narrow(__ddiv_rn(work[i], sum)));
    }
    __syncthreads();

    // 6. The draw: the first index whose running sum exceeds u * total; else the last positive probability; else 0.
    const double total = staged_sum(work, vocab, stage, &value_sh);
    const double target = uniform(keys[r], steps[r]) * total;
    double cumulative = 0.0;
    int token = -1;
    staged_visit(work, vocab, stage, &stop, [&](int i, double p) {
        cumulative += p;
        if (cumulative > target) {
            token = i;
            return true;
        }
        return false;
    });
    if (tid == 0) token_sh = token;
    __syncthreads();
    if (token_sh >= 0) {
        if (tid == 0) out[r] = (unsigned)token_sh;
        return;
    }
    if (tid == 0) top_key_sh = 0;
    __syncthreads();
    {
        unsigned last = 0;  // 1 + the last index with a positive probability
        for (int i = tid; i < vocab; i += threads)
            if (work[i] > 0.0) last = i + 1;
        atomicMax(&top_key_sh, last);
    }
    __syncthreads();
    if (tid == 0) out[r] = top_key_sh > 0 ? top_key_sh - 1 : 0;
}

// ================================================================================================================
// sample: the fast kernel. One block of SAMPLE_THREADS per row; grid (rows); about 38 KiB of static shared memory.
//
// Greedy: a block-wide maximum of (value key, -index), the first index on ties.
// Sampling, in passes over the row (the scores are recomputed from the logits in each pass):
// 1. Top-k: the exact k-th largest value key by radix select (4 passes of 8 bits: a 256-bin histogram of the keys
//    that share the digits chosen so far, warp-aggregated; warp 0 picks the bin holding the k-th).
// 2. Candidates: scores above -inf and >= the k-th key (ties kept); their maximum. With top-p they are gathered
//    into shared memory as (total-order key, index); more than CANDIDATES of them and the row answers
//    OVERFLOW_TOKEN: the host then samples it with sample_plain (this kernel never guesses).
// 3. Top-p: bitonic sort of the candidates; exponentials, probabilities in parallel; their sum and the running sum
//    in sorted order by one thread, as the host does, so the cut is the host's. The survivors are the candidates
//    whose (key, index) is >= the first one kept.
// 4. Softmax and draw over the survivors in index order: f64 block sums of the exponentials and of the f32
//    probabilities, then an inverse-CDF scan over tiles of SAMPLE_THREADS x SCAN_ITEMS consecutive tokens: the
//    tile's probabilities go to shared memory (coalesced), each thread sums its slice of SCAN_ITEMS in order, a
//    block prefix sum places them, and the first thread whose running sum passes u * total finds the token in its
//    slice.
//
// Summation order: the normaliser, the total and the running sum of step 4 are added in block order (tree sums and
// a prefix sum over thread slices), not left to right as on the host, so they can differ from the host's by a few
// f64 ulps. A probability can then differ by one f32 ulp (when exp / sum lies that close to an f32 rounding
// boundary), and the token differs only if u * total falls within that rounding of a CDF boundary. The chosen token
// always has a positive probability. Top-k, the top-p cut and greedy are exact.
// ================================================================================================================

// What survives the filters, and the softmax over the survivors.
struct Filter {
    uint32_t kth;  // top-k: value keys >= kth (0 without top-k)
    u64 cut;       // top-p: sort keys >= cut (0 without top-p)
    float top;     // the largest survivor
    int top_inf;   // it is +inf: the +inf survivors share the mass
    float share;
    double sum;    // the normaliser when the largest is finite
};

__device__ __forceinline__ bool survives(const Row& row, const Filter& f, int i, float& s) {
    s = score(row, i);
    const uint32_t key = value_key(s);
    return key != NEG_INF_KEY && key >= f.kth && sort_key(s, i) >= f.cut;
}

__device__ __forceinline__ float probability(const Row& row, const Filter& f, int i) {
    float s;
    if (!survives(row, f, i, s)) return 0.0f;
    if (f.top_inf) return order_key(s) == POS_INF_KEY ? f.share : 0.0f;
    return narrow(__ddiv_rn(exp(widen(sub_exact(s, f.top))), f.sum));
}

// Where the scan keeps item `i` of its tile in shared memory: slice i / SCAN_ITEMS, its place in the slice rotated
// by half the slice's number, so that a warp reading item k of its 32 slices hits 32 banks, and so does a warp
// storing 32 consecutive items (two slices).
static_assert(CANDIDATES * sizeof(u64) >= SAMPLE_THREADS * SCAN_ITEMS * sizeof(float), "a scan tile fits");
__device__ __forceinline__ int scan_slot(int i) {
    const int slice = i / SCAN_ITEMS;
    return slice * SCAN_ITEMS + (i + slice / 2) % SCAN_ITEMS;
}

// Warp 0: the bin (from the top) that holds the `remaining`-th largest of the histogram's keys.
__device__ __forceinline__ void select_bin(const unsigned* hist, unsigned remaining, unsigned* digit,
                                           unsigned* still) {
    const int lane = threadIdx.x & 31;
    unsigned count[8], local = 0;
#pragma unroll
    for (int b = 0; b < 8; ++b) {
        count[b] = hist[lane * 8 + b];
        local += count[b];
    }
    unsigned suffix = local;  // keys in the bins of this lane and the lanes above
    for (int offset = 1; offset < 32; offset <<= 1) {
        const unsigned t = __shfl_down_sync(FULL_MASK, suffix, offset);
        if (lane + offset < 32) suffix += t;
    }
    unsigned above = suffix - local;
#pragma unroll
    for (int b = 7; b >= 0; --b) {
        if (above < remaining && remaining <= above + count[b]) {
            *digit = lane * 8 + b;
            *still = remaining - above;
        }
        above += count[b];
    }
}

// At least 2 blocks per SM: ptxas then allows the registers that avoid spills (with one bound alone it picks 40
// registers and spills).
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS, 2)
sample(const void* __restrict__ logits, int is_bf16, int vocab, const u64* __restrict__ keys,
       const u64* __restrict__ steps, int apply_temperature, float temperature, int top_k, int top_p_on,
       float threshold, int greedy, unsigned int* __restrict__ out) {
    __shared__ u64 candidates[CANDIDATES];
    __shared__ unsigned hist[256];
    __shared__ double scan[SAMPLE_THREADS];
    __shared__ double red_f64[32];
    __shared__ u64 red_u64[32];
    __shared__ unsigned red_u32[32];
    __shared__ unsigned n_candidates, select_digit, select_remaining, removed_sh;
    __shared__ double sum_sh;
    __shared__ u64 cut_sh;
    if (blockDim.x != SAMPLE_THREADS) return;  // the geometry below depends on it; the host checks the tokens
    const int tid = threadIdx.x, lane = tid & 31;
    const int64_t r = blockIdx.x;
    const Row row = make_row(logits, is_bf16, vocab, r, apply_temperature, temperature);

    if (greedy) {
        u64 best = 0;  // below every real (key, -index): the smallest key is NEG_INF_KEY > 0
        for (int i = tid; i < vocab; i += SAMPLE_THREADS) {
            const u64 packed = ((u64)value_key(logit(row, i)) << 32) | (0xFFFFFFFFu - (uint32_t)i);
            best = packed > best ? packed : best;
        }
        best = block_reduce(best, 0ull, red_u64, MaxOp<u64>());
        if (tid == 0) out[r] = 0xFFFFFFFFu - (uint32_t)best;
        return;
    }

    // 1. Top-k by radix select on the value keys, most significant digit first. A top_k of at least the vocabulary
    // keeps every token: there is no k-th largest to select (its bins would never be found).
    uint32_t kth = 0;
    if (top_k > 0 && top_k < vocab) {
        uint32_t prefix = 0, mask = 0;
        unsigned remaining = top_k;
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (int b = tid; b < 256; b += SAMPLE_THREADS) hist[b] = 0;
            __syncthreads();
            for (int base = 0; base < vocab; base += SAMPLE_THREADS) {  // the same trip count in every thread
                const int i = base + tid;
                int digit = -1;
                if (i < vocab) {
                    const uint32_t key = value_key(score(row, i));
                    if ((key & mask) == prefix) digit = (key >> shift) & 0xFF;
                }
                const unsigned peers = __match_any_sync(FULL_MASK, digit);
                if (digit >= 0 && lane == __ffs(peers) - 1) atomicAdd(&hist[digit], (unsigned)__popc(peers));
            }
            __syncthreads();
            if (tid < 32) select_bin(hist, remaining, &select_digit, &select_remaining);
            __syncthreads();
            prefix |= select_digit << shift;
            mask |= 0xFFu << shift;
            remaining = select_remaining;
        }
        kth = prefix;
    }

    // 2. The candidates and their maximum.
    if (tid == 0) n_candidates = 0;
    __syncthreads();
    uint32_t top_key = NEG_INF_KEY;
    for (int base = 0; base < vocab; base += SAMPLE_THREADS) {  // the same trip count in every thread
        const int i = base + tid;
        bool candidate = false;
        u64 packed = 0;
        if (i < vocab) {
            const float s = score(row, i);
            const uint32_t key = value_key(s);
            candidate = key != NEG_INF_KEY && key >= kth;
            if (candidate) {
                top_key = max(top_key, key);
                packed = sort_key(s, i);
            }
        }
        if (top_p_on) {
            const unsigned ballot = __ballot_sync(FULL_MASK, candidate);
            if (ballot != 0) {
                unsigned first = 0;
                if (lane == 0) first = atomicAdd(&n_candidates, (unsigned)__popc(ballot));
                first = __shfl_sync(FULL_MASK, first, 0);
                const unsigned slot = first + __popc(ballot & ((1u << lane) - 1u));
                if (candidate && slot < CANDIDATES) candidates[slot] = packed;
            }
        }
    }
    top_key = block_reduce(top_key, 0u, red_u32, MaxOp<uint32_t>());  // synchronises: n_candidates is final
    const int n = (int)min(n_candidates, (unsigned)CANDIDATES + 1);
    if (top_p_on && n > CANDIDATES) {
        if (tid == 0) out[r] = OVERFLOW_TOKEN;
        return;
    }
    if (top_key == NEG_INF_KEY) {  // nothing above -inf
        if (tid == 0) out[r] = 0;
        return;
    }

    // 3. Top-p over the sorted candidates.
    u64 cut = 0;
    if (top_p_on && n >= 2) {
        const int m = next_pow2(n);
        for (int j = n + tid; j < m; j += SAMPLE_THREADS) candidates[j] = ~0ull;
        __syncthreads();
        bitonic_sort(candidates, m);
        u64 mine[PER_THREAD];  // this thread's sorted keys (positions tid + k * SAMPLE_THREADS)
#pragma unroll
        for (int k = 0; k < PER_THREAD; ++k) {
            const int j = tid + k * SAMPLE_THREADS;
            mine[k] = j < n ? candidates[j] : ~0ull;
        }
        const float top = key_value((uint32_t)(candidates[n - 1] >> 32));
        __syncthreads();  // every key is in registers: the array now holds f64 exponentials, then probabilities
        double* p = reinterpret_cast<double*>(candidates);
        if (order_key(top) == POS_INF_KEY) {
            unsigned inf = 0;
#pragma unroll
            for (int k = 0; k < PER_THREAD; ++k)
                inf += (tid + k * SAMPLE_THREADS < n && (uint32_t)(mine[k] >> 32) == POS_INF_KEY) ? 1u : 0u;
            inf = block_reduce(inf, 0u, red_u32, SumOp<unsigned>());
            const float share = narrow(__ddiv_rn(1.0, (double)inf));
#pragma unroll
            for (int k = 0; k < PER_THREAD; ++k) {
                const int j = tid + k * SAMPLE_THREADS;
                if (j < n) p[j] = (uint32_t)(mine[k] >> 32) == POS_INF_KEY ? widen(share) : 0.0;
            }
        } else {
#pragma unroll
            for (int k = 0; k < PER_THREAD; ++k) {
                const int j = tid + k * SAMPLE_THREADS;
                if (j < n) p[j] = exp(widen(sub_exact(key_value((uint32_t)(mine[k] >> 32)), top)));
            }
            __syncthreads();
            if (tid == 0) {
                double s = 0.0;
                for (int j = 0; j < n; ++j) s += p[j];
                sum_sh = s;
            }
            __syncthreads();
            const double s = sum_sh;
#pragma unroll
            for (int k = 0; k < PER_THREAD; ++k) {
                const int j = tid + k * SAMPLE_THREADS;
                if (j < n) p[j] = widen(narrow(__ddiv_rn(p[j], s)));
            }
        }
        __syncthreads();
        if (tid == 0) {
            double cumulative = 0.0;
            unsigned removed = 0;
            for (int j = 0; j + 1 < n; ++j) {
                cumulative += p[j];
                if (greater_non_negative(narrow(cumulative), threshold)) break;
                ++removed;
            }
            removed_sh = removed;
        }
        __syncthreads();
        const int removed = removed_sh;  // < n: the largest is kept
#pragma unroll
        for (int k = 0; k < PER_THREAD; ++k)
            if (tid + k * SAMPLE_THREADS == removed) cut_sh = mine[k];
        __syncthreads();
        cut = cut_sh;
    }

    // 4. Softmax over the survivors (the largest candidate always survives), then the draw.
    Filter f;
    f.kth = kth;
    f.cut = cut;
    f.top = key_value(top_key);
    f.top_inf = top_key == POS_INF_KEY;
    f.share = 0.0f;
    f.sum = 1.0;
    if (f.top_inf) {
        unsigned inf = 0;
        for (int i = tid; i < vocab; i += SAMPLE_THREADS) {
            float s;
            if (survives(row, f, i, s) && order_key(s) == POS_INF_KEY) ++inf;
        }
        inf = block_reduce(inf, 0u, red_u32, SumOp<unsigned>());
        f.share = narrow(__ddiv_rn(1.0, (double)inf));
    } else {
        double sum = 0.0;
        for (int i = tid; i < vocab; i += SAMPLE_THREADS) {
            float s;
            if (survives(row, f, i, s)) sum += exp(widen(sub_exact(s, f.top)));
        }
        f.sum = block_reduce(sum, 0.0, red_f64, SumOp<double>());
    }
    double total = 0.0;
    unsigned last = 0;  // 1 + the last index with a positive probability
    for (int i = tid; i < vocab; i += SAMPLE_THREADS) {
        const float q = probability(row, f, i);
        total += widen(q);
        if (__float_as_uint(q) != 0) last = i + 1;
    }
    total = block_reduce(total, 0.0, red_f64, SumOp<double>());
    last = block_reduce(last, 0u, red_u32, MaxOp<unsigned>());
    const double target = uniform(keys[r], steps[r]) * total;

    // Each tile's probabilities are computed once, by consecutive threads for consecutive tokens (coalesced
    // loads), into shared memory (the candidates' array, free again), where each thread then reads its slice.
    float* probs = reinterpret_cast<float*>(candidates);
    double carry = 0.0;  // the running sum before this tile, the same in every thread
    for (int base = 0; base < vocab; base += SAMPLE_THREADS * SCAN_ITEMS) {
        for (int i = tid; i < SAMPLE_THREADS * SCAN_ITEMS; i += SAMPLE_THREADS)
            probs[scan_slot(i)] = base + i < vocab ? probability(row, f, base + i) : 0.0f;
        __syncthreads();
        const int start = base + tid * SCAN_ITEMS;
        double local = 0.0;
        for (int k = 0; k < SCAN_ITEMS; ++k) local += widen(probs[scan_slot(tid * SCAN_ITEMS + k)]);
        const double inclusive = block_inclusive_sum(local, red_f64);
        scan[tid] = inclusive;
        __syncthreads();
        const double before = carry + (tid > 0 ? scan[tid - 1] : 0.0);
        const double tile = scan[SAMPLE_THREADS - 1];
        // Within a slice the running sum before + partial only grows, so the slice holds a token whose running sum
        // passes the target exactly when it has a positive probability and before + local passes it.
        const bool passes = local > 0.0 && before + local > target;
        const unsigned first = block_reduce(passes ? (unsigned)tid : SAMPLE_THREADS, (unsigned)SAMPLE_THREADS,
                                            red_u32, MinOp<unsigned>());
        if (first < SAMPLE_THREADS) {
            if (tid == (int)first) {
                double partial = 0.0;
                unsigned token = start;
                for (int k = 0; k < SCAN_ITEMS && start + k < vocab; ++k) {
                    const float q = probs[scan_slot(tid * SCAN_ITEMS + k)];
                    partial += widen(q);
                    if (__float_as_uint(q) != 0 && before + partial > target) {
                        token = start + k;
                        break;
                    }
                }
                out[r] = token;
            }
            return;
        }
        carry = carry + tile;
    }
    if (tid == 0) out[r] = last > 0 ? last - 1 : 0;  // rounding left the target beyond the running sum
}
