/* Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11; Random123).
 *
 * Every sample is a pure function of (seed, stream, index), so the same
 * seed gives the same numbers on any thread count, in any order, and on
 * the CPU or a GPU. The layout, fixed here for every lsdm program:
 *   key     = { seed & 0xffffffff, seed >> 32 }
 *   counter = { block & 0xffffffff, block >> 32, stream & 0xffffffff, stream >> 32 }
 * One block gives four 32-bit words. Element i of a sampled tensor uses
 * block i/4 and word i%4 (uniform), or block i/4 with words 0,1 (i%4 = 0,1)
 * or 2,3 (i%4 = 2,3) as one Box-Muller pair (normal; even i the cosine
 * half, odd i the sine half).
 *
 * Bit-exact everywhere: the conversions to float use only correctly
 * rounded IEEE double operations (+ - * / sqrt, no libm, no fused
 * multiply-add), so a GPU port compiled without FMA contraction
 * (nvcc -fmad=false, or __dadd_rn/__dmul_rn) gives the same bits. */
#ifndef LSDM_RNG_H
#define LSDM_RNG_H

#include <stddef.h>
#include <stdint.h>

/* The Philox4x32 bijection with 10 rounds: out = philox(ctr, key). */
void lsdm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Block `block` of stream `stream` under `seed`, in the layout above. */
void lsdm_rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]);

/* Uniform in the open interval (0,1) from one word: the top 23 bits,
 * centred: ((w >> 9) + 0.5) * 2^-23. Exact in f32; never 0 or 1. */
float lsdm_rng_u01(uint32_t w);

/* Two independent standard normals from two words (Box-Muller):
 * r = sqrt(-2 ln u), u = (a + 0.5) * 2^-32 in (0,1);
 * angle = 2 pi b / 2^32; z0 = r cos(angle), z1 = r sin(angle).
 * Computed in double, rounded once to f32. |z| < 6.7. */
void lsdm_rng_box_muller(uint32_t a, uint32_t b, float *z0, float *z1);

/* dst[j] = sample of element (offset + j), j < n, in the layout above. */
void lsdm_rng_fill_uniform(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void lsdm_rng_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

#ifdef LSDM_CUDA
/* The same samples into device memory (kernels/cuda/rng.cu); bit-identical
 * to the CPU fills. 0 ok, -1 with lsdm_err. */
int lsdm_rng_fill_uniform_cuda(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
int lsdm_rng_fill_normal_cuda(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
#endif

/* A sequential generator over one stream, for code that just wants "the
 * next number": its k-th 32-bit word is word k%4 of block k/4. Normals
 * take two words (a Box-Muller pair) and hand out both halves in turn. */
typedef struct {
    uint64_t seed, stream;
    uint64_t block;   /* next block to compute */
    uint32_t buf[4];  /* words of block - 1 */
    int pos;          /* next unused word of buf; 4 = none left */
    int have_normal;  /* the sine half of the last pair is waiting */
    float normal;
} lsdm_rng;

void lsdm_rng_init(lsdm_rng *r, uint64_t seed, uint64_t stream);
uint32_t lsdm_rng_u32(lsdm_rng *r);
float lsdm_rng_uniform(lsdm_rng *r); /* lsdm_rng_u01 of the next word */
float lsdm_rng_normal(lsdm_rng *r);
/* Uniform in [lo, hi), in double (from one word, 23 bits). */
double lsdm_rng_range(lsdm_rng *r, double lo, double hi);

/* A 64-bit seed derived from (seed, index, purpose), e.g. one per record
 * of a batch: the first two words of a Philox block. */
uint64_t lsdm_rng_derive(uint64_t seed, uint64_t index, uint32_t purpose);

#endif
