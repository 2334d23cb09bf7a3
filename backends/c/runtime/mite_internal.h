/*
 * mite_internal.h - helpers shared by the kernel sources (not part of the API).
 */
#ifndef MITE_INTERNAL_H
#define MITE_INTERNAL_H

#include <math.h>
#include <string.h>

#include "mite_kernels.h"

/* The optional Arm DSP path: on a little-endian core with the DSP (SIMD32) extension, such as
 * Cortex-M4 and M7, the hot int8 multiply-accumulate loops use the ACLE intrinsics of
 * <arm_acle.h> (two 16-bit products summed into 32 bits per instruction, SMLAD). Their sums are
 * the same integers as the portable loops' (32-bit wrapping addition in another order), so the
 * results are bit-identical. Define MITE_NO_ARM_DSP to build the portable loops instead; every
 * other target (the host) always does. */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && !defined(__ARM_BIG_ENDIAN) && \
    !defined(MITE_NO_ARM_DSP)
#define MITE_ARM_DSP 1
#include <arm_acle.h>

/* The four bytes at p as one little-endian word (memcpy: no alignment or aliasing assumption;
 * a single LDR on ARMv7E-M, which loads unaligned words). */
static inline int32_t mite_dsp_load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A word's bits as int32_t (two's complement; no implementation-defined conversion). */
static inline int32_t mite_dsp_word(uint32_t u) {
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)(u - 2147483648u) - INT32_MAX - 1;
}

/* v rotated right by 8 bits (one ROR; SXTB16 of it extends bytes 1 and 3). */
static inline int32_t mite_dsp_ror8(int32_t v) {
    return mite_dsp_word(((uint32_t)v >> 8) | ((uint32_t)v << 24));
}

/* The low halfwords of a and b as the pair (lo(a), lo(b)), lo(a) in the low half (what PKHBT
 * does; gcc 12 emits UXTH and ORR). */
static inline int32_t mite_dsp_pack_lo(int32_t a, int32_t b) {
    return mite_dsp_word(((uint32_t)a & 0xffffu) | ((uint32_t)b << 16));
}

/* The high halfwords of a and b as the pair (hi(a), hi(b)), hi(a) in the low half (AND and
 * ORR). */
static inline int32_t mite_dsp_pack_hi(int32_t a, int32_t b) {
    return mite_dsp_word(((uint32_t)a >> 16) | ((uint32_t)b & 0xffff0000u));
}

/* Channel pairs whose packed weights mite_dsp_pointwise_pairs holds at once (on the stack). */
#define MITE_PW_PAIRS 32u

/* The channel pairs (c, c + 1), c even and c + 1 < c_in, of a pointwise convolution's sums
 * (the bottleneck's pointwise_run, mite_conv2d_int8's conv_pointwise) over len outputs:
 * acc[i] += (w_o[c] - zw) * x[c * stride + i] + (w_o[c + 1] - zw) * x[(c + 1) * stride + i],
 * wrapping, by SMLAD. The weights of up to MITE_PW_PAIRS pairs are packed first as halfword
 * pairs (each |w - zw| <= 255); then four outputs at a time load one word of four inputs from
 * each channel of a pair, u0 = bytes (a0 a1 a2 a3) and u1 = (b0 b1 b2 b3), join their low
 * halves into (a0 a1 b0 b1) and their high halves into (a2 a3 b2 b3), sign-extend bytes 0 and 2
 * of each (SXTB16: the halfword pair (a0, b0), or (a2, b2)) and bytes 1 and 3 (SXTB16 of the
 * word rotated by 8: (a1, b1), or (a3, b3)) and add both products of each output to its
 * accumulator in one SMLAD: a 32-bit sum of the same products as the portable loop, which
 * wrapping addition does not tell apart. The last len % 4 outputs take the portable loop.
 * Every accumulator is read and written as the int32_t of its wrapped sum. */
static inline void mite_dsp_pointwise_pairs(const int8_t *x, size_t stride, size_t c_in,
                                            const int8_t *w_o, int32_t zw, size_t len,
                                            int32_t *acc) {
    int32_t wp[MITE_PW_PAIRS];
    size_t pairs = c_in / 2, p0, np, j, i;
    for (p0 = 0; p0 < pairs; p0 += np) {
        const int8_t *xc = x + 2u * p0 * stride;
        const int8_t *wc = w_o + 2u * p0;
        np = pairs - p0 < MITE_PW_PAIRS ? pairs - p0 : MITE_PW_PAIRS;
        for (j = 0; j < np; j++) {
            wp[j] = mite_dsp_pack_lo(wc[2u * j] - zw, wc[2u * j + 1u] - zw);
        }
        for (i = 0; i + 4u <= len; i += 4u) {
            int32_t a0 = acc[i], a1 = acc[i + 1u], a2 = acc[i + 2u], a3 = acc[i + 3u];
            const int8_t *xp = xc + i;
            for (j = 0; j < np; j++, xp += 2u * stride) {
                int32_t u0 = mite_dsp_load4(xp), u1 = mite_dsp_load4(xp + stride);
                int32_t lo = mite_dsp_pack_lo(u0, u1), hi = mite_dsp_pack_hi(u0, u1);
                a0 = __smlad(__sxtb16(lo), wp[j], a0);
                a1 = __smlad(__sxtb16(mite_dsp_ror8(lo)), wp[j], a1);
                a2 = __smlad(__sxtb16(hi), wp[j], a2);
                a3 = __smlad(__sxtb16(mite_dsp_ror8(hi)), wp[j], a3);
            }
            acc[i] = a0;
            acc[i + 1u] = a1;
            acc[i + 2u] = a2;
            acc[i + 3u] = a3;
        }
        for (; i < len; i++) {
            const int8_t *xp = xc + i;
            uint32_t a = (uint32_t)acc[i];
            for (j = 0; j < np; j++, xp += 2u * stride) {
                int32_t w0 = wc[2u * j] - zw, w1 = wc[2u * j + 1u] - zw;
                a += (uint32_t)(w0 * xp[0] + w1 * xp[stride]);
            }
            acc[i] = mite_dsp_word(a);
        }
    }
}

/* mite_dsp_pointwise_pairs for two output channels a and b over the same inputs: each word
 * pair of inputs is loaded and sign-extended once for both (halving that work per product),
 * the packed weights of the two channels interleaved in one table. */
static inline void mite_dsp_pointwise_pairs2(const int8_t *x, size_t stride, size_t c_in,
                                             const int8_t *w_a, int32_t zw_a, const int8_t *w_b,
                                             int32_t zw_b, size_t len, int32_t *acc_a,
                                             int32_t *acc_b) {
    int32_t wp[2u * MITE_PW_PAIRS];
    size_t pairs = c_in / 2, p0, np, j, i;
    for (p0 = 0; p0 < pairs; p0 += np) {
        const int8_t *xc = x + 2u * p0 * stride;
        const int8_t *wa = w_a + 2u * p0, *wb = w_b + 2u * p0;
        np = pairs - p0 < MITE_PW_PAIRS ? pairs - p0 : MITE_PW_PAIRS;
        for (j = 0; j < np; j++) {
            wp[2u * j] = mite_dsp_pack_lo(wa[2u * j] - zw_a, wa[2u * j + 1u] - zw_a);
            wp[2u * j + 1u] = mite_dsp_pack_lo(wb[2u * j] - zw_b, wb[2u * j + 1u] - zw_b);
        }
        for (i = 0; i + 4u <= len; i += 4u) {
            int32_t a0 = acc_a[i], a1 = acc_a[i + 1u], a2 = acc_a[i + 2u], a3 = acc_a[i + 3u];
            int32_t b0 = acc_b[i], b1 = acc_b[i + 1u], b2 = acc_b[i + 2u], b3 = acc_b[i + 3u];
            const int8_t *xp = xc + i;
            const int32_t *wq = wp;
            for (j = 0; j < np; j++, xp += 2u * stride, wq += 2) {
                int32_t u0 = mite_dsp_load4(xp), u1 = mite_dsp_load4(xp + stride);
                int32_t lo = mite_dsp_pack_lo(u0, u1), hi = mite_dsp_pack_hi(u0, u1);
                int32_t v0 = __sxtb16(lo), v1 = __sxtb16(mite_dsp_ror8(lo));
                int32_t v2 = __sxtb16(hi), v3 = __sxtb16(mite_dsp_ror8(hi));
                a0 = __smlad(v0, wq[0], a0);
                a1 = __smlad(v1, wq[0], a1);
                a2 = __smlad(v2, wq[0], a2);
                a3 = __smlad(v3, wq[0], a3);
                b0 = __smlad(v0, wq[1], b0);
                b1 = __smlad(v1, wq[1], b1);
                b2 = __smlad(v2, wq[1], b2);
                b3 = __smlad(v3, wq[1], b3);
            }
            acc_a[i] = a0;
            acc_a[i + 1u] = a1;
            acc_a[i + 2u] = a2;
            acc_a[i + 3u] = a3;
            acc_b[i] = b0;
            acc_b[i + 1u] = b1;
            acc_b[i + 2u] = b2;
            acc_b[i + 3u] = b3;
        }
        for (; i < len; i++) {
            const int8_t *xp = xc + i;
            uint32_t a = (uint32_t)acc_a[i], b = (uint32_t)acc_b[i];
            for (j = 0; j < np; j++, xp += 2u * stride) {
                int32_t x0 = xp[0], x1 = xp[stride];
                a += (uint32_t)((wa[2u * j] - zw_a) * x0 + (wa[2u * j + 1u] - zw_a) * x1);
                b += (uint32_t)((wb[2u * j] - zw_b) * x0 + (wb[2u * j + 1u] - zw_b) * x1);
            }
            acc_a[i] = mite_dsp_word(a);
            acc_b[i] = mite_dsp_word(b);
        }
    }
}
#endif

/* Record an error and return its code. */
mite_status mite_fail(mite_status code, const char *message, size_t expected, size_t found,
                      size_t index);
/* Length check (Rust `check_len`). */
mite_status mite_check_len(const char *what, size_t expected, size_t found);
/* Scratch check (Rust `check_scratch`). */
mite_status mite_check_scratch(size_t needed, size_t found);
/* Product of dims, or an error when it overflows size_t (Rust `checked_product`). */
mite_status mite_checked_product(const size_t *dims, size_t count, size_t *product);
/* Checked a * b (returns 0 on overflow). */
int mite_mul_ok(size_t a, size_t b, size_t *out);

/* The two axes of a window over in_hw, or Geometry error. */
mite_status mite_window_axes(const mite_window2d *w, const size_t in_hw[2],
                             mite_window_axis axes[2]);
/* The axes of a validated convolution geometry. */
void mite_conv_axes(const mite_conv2d_geometry *g, mite_window_axis axes[2]);
/* ceil(a / b) for b > 0. */
static inline size_t mite_div_ceil(size_t a, size_t b) { return a / b + (a % b != 0); }

/* Outputs o in [*lo, *hi) for which tap k reads real input (inline: the kernels call the axis
 * helpers per output). */
static inline void mite_axis_valid_outputs(const mite_window_axis *a, size_t k, size_t *lo,
                                           size_t *hi) {
    size_t offset = k * a->dilation;
    size_t limit = a->in_len + a->pad_begin;
    size_t l = offset >= a->pad_begin ? 0 : mite_div_ceil(a->pad_begin - offset, a->stride);
    size_t h = 0;
    if (offset < limit) {
        h = mite_div_ceil(limit - offset, a->stride);
        if (h > a->out_len) {
            h = a->out_len;
        }
    }
    *lo = l < h ? l : h;
    *hi = h;
}

/* Taps k in [*lo, *hi) of output o that read real input. */
static inline void mite_axis_valid_taps(const mite_window_axis *a, size_t o, size_t *lo,
                                        size_t *hi) {
    size_t base = o * a->stride;
    size_t limit = a->in_len + a->pad_begin;
    size_t l = base >= a->pad_begin ? 0 : mite_div_ceil(a->pad_begin - base, a->dilation);
    size_t h = 0;
    if (base < limit) {
        h = mite_div_ceil(limit - base, a->dilation);
        if (h > a->kernel) {
            h = a->kernel;
        }
    }
    *lo = l < h ? l : h;
    *hi = h;
}

/* The input index read by tap k at output o. */
static inline size_t mite_axis_input_index(const mite_window_axis *a, size_t o, size_t k) {
    return o * a->stride + k * a->dilation - a->pad_begin;
}

/* Iterator over (tap, output row) pairs where the tap reads real input (Rust
 * `for_each_tap_row`): taps in row-major order, rows ascending. */
typedef struct {
    mite_window_axis ay, ax;
    size_t ki, kj;
    size_t oy, oy_hi;
    size_t ox_lo, ox_hi;
    int started;
    /* outputs of the current step */
    size_t row_oy, row_iy, row_ox_lo, row_ox_hi, row_ix0, row_tap;
} mite_tap_rows;

void mite_tap_rows_init(mite_tap_rows *it, const mite_window_axis axes[2]);
/* dw[tap] += sum over the tap's rows of dy * x for one (input plane, output plane) pair (Rust
 * `weight_taps`). */
void mite_weight_taps(const float *xp, const float *dyp, float *dw,
                      const mite_window_axis axes[2]);
/* Advance; returns 0 when done. */
int mite_tap_rows_next(mite_tap_rows *it);

/* The outputs of one tap (ki, kj) that read real input: rows [oy_lo, oy_hi) and columns
 * [ox_lo, ox_hi), the first row's input row iy0 and the first column's input column ix0 (the
 * per-tap ranges of mite_tap_rows). A tap that reads no input column has no rows. */
typedef struct {
    size_t oy_lo, oy_hi, ox_lo, ox_hi, iy0, ix0;
} mite_tap_span;

/* Taps of a window whose spans fit a table on the stack. */
#define MITE_TAP_TABLE 64u

/* The span of tap t (row-major) of the window. */
void mite_tap_span_of(const mite_window_axis axes[2], size_t t, mite_tap_span *span);
/* The spans of every tap when the window has at most MITE_TAP_TABLE taps (returns 1), else 0. */
int mite_tap_spans(const mite_window_axis axes[2], mite_tap_span spans[MITE_TAP_TABLE]);

/* d[i] += w * y[i] for i < n: each element one product and one sum, in chunks of 8 so the
 * compiler vectorises it at -O2 too (no element's sum changes order). */
static inline void mite_axpy_f32(float *restrict d, const float *restrict y, float w, size_t n) {
    size_t i = 0, k;
    for (; i + 8u <= n; i += 8u) {
        for (k = 0; k < 8u; k++) {
            d[i + k] += w * y[i + k];
        }
    }
    for (; i < n; i++) {
        d[i] += w * y[i];
    }
}

/* Input channels per block of the pointwise weight-gradient sums. */
#define MITE_PW_BLOCK 8u
/* The pointwise (1x1, stride 1, no padding) weight gradient of `count` (<= MITE_PW_BLOCK)
 * input-channel planes x + j * plane against one output-channel plane dyp: sums[j] += the
 * partial sum of each row of ow elements, rows ascending, each row summed from 0 in order (the
 * sums of weight_taps, several channels at once). */
void mite_pointwise_weight_sums(const float *x, size_t plane, size_t count, const float *dyp,
                                size_t ow, float *sums);
/* Whether a geometry is pointwise: 1x1, stride 1, no padding. */
int mite_conv_is_pointwise(const mite_conv2d_geometry *g);

/* The real value f32(q - z) * s of element i of a per-axis quantized weight (mite_per_axis_of
 * without its division when there is one scale). */
static inline float mite_dequant_at(const mite_per_axis *p, const int8_t *w, size_t i) {
    size_t c = 0;
    if (p->scales_len > 1) {
        c = (i / (p->inner > 0 ? p->inner : 1)) % p->scales_len;
    }
    return (float)((int16_t)w[i] - (int16_t)(c < p->zero_points_len ? p->zero_points[c] : 0)) *
           p->scales[c];
}

/* round_ties_even in f64 (the body of mite_round_ties_even_f64, inline for the hot update
 * loops): NaN and |x| >= 2^52 are already integers; otherwise adding and subtracting 2^52
 * rounds |x| to an integer, ties to even, and x's sign is put back (copysign of the
 * nonnegative r is signbit(x) ? -r : r, without a branch on the sign). */
static inline double mite_round_ties_even_f64_inline(double x) {
    if (isnan(x) || fabs(x) >= 4503599627370496.0) {
        return x;
    }
    return copysign((fabs(x) + 4503599627370496.0) - 4503599627370496.0, x);
}

/* out[j] = mite_dequant_at(p, w, i0 + j) for j < n: the channel found once for i0 and then
 * followed along the run (no division per element). */
static inline void mite_dequant_run(const mite_per_axis *p, const int8_t *w, size_t i0, size_t n,
                                    float *out) {
    size_t inner = p->inner > 0 ? p->inner : 1, q = i0 / inner, j;
    size_t c = p->scales_len > 1 ? q % p->scales_len : 0;
    size_t left = inner - (i0 - q * inner); /* elements of channel c from i0 on */
    for (j = 0; j < n; j++) {
        if (left == 0) {
            c = c + 1 < p->scales_len ? c + 1 : 0;
            left = inner;
        }
        left--;
        out[j] = (float)((int16_t)w[i0 + j] -
                         (int16_t)(c < p->zero_points_len ? p->zero_points[c] : 0)) *
                 p->scales[c];
    }
}

/* Wrapping and saturating i32 arithmetic without undefined behaviour. */
static inline int32_t mite_wrap_i32(uint32_t v) {
    return v <= (uint32_t)INT32_MAX ? (int32_t)v : (int32_t)(v - 2147483648u) - INT32_MAX - 1;
}
static inline int32_t mite_wadd(int32_t a, int32_t b) {
    return mite_wrap_i32((uint32_t)a + (uint32_t)b);
}
static inline int32_t mite_wmul(int32_t a, int32_t b) {
    return mite_wrap_i32((uint32_t)a * (uint32_t)b);
}
static inline int32_t mite_sat_i32(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}
static inline int32_t mite_sadd(int32_t a, int32_t b) {
    return mite_sat_i32((int64_t)a + (int64_t)b);
}
/* Rust `f64 as i32` / `as i64`: saturating, NaN to 0. */
int32_t mite_f64_to_i32(double x);
int64_t mite_f64_to_i64(double x);
/* Rust `ActRange::clamp`. */
static inline int8_t mite_clamp_act(mite_act_range r, int32_t v) {
    return (int8_t)(v < r.min ? r.min : (v > r.max ? r.max : v));
}
mite_status mite_act_range_check(mite_act_range r);
mite_status mite_scale_check(float scale);

/* Scale and zero point of element i of a per-axis quantized tensor (Rust `PerAxis::of`);
 * inline, and without a division when there is one scale. */
static inline void mite_per_axis_of(const mite_per_axis *p, size_t i, float *s, int8_t *z) {
    size_t c = p->scales_len == 1 ? 0 : (i / (p->inner > 0 ? p->inner : 1)) % p->scales_len;
    *s = p->scales[c];
    *z = c < p->zero_points_len ? p->zero_points[c] : 0;
}
mite_status mite_output_stage_check(const mite_output_stage *s, size_t channels);
mite_status mite_check_zero_points(size_t len, size_t channels);
int32_t mite_rounding_multiply(mite_rounding r, int32_t x, int32_t multiplier, int32_t shift);

/* ---- hot fixed-point and requantization helpers, inline so every kernel file can inline them
 * (the public mite_multiply_by_quantized_multiplier* and mite_requant_apply wrap these). */

/* Arithmetic shift right (floor division by 2^s) without implementation-defined behaviour. */
static inline int64_t mite_asr64(int64_t v, unsigned s) {
    if (v >= 0) {
        return v >> s;
    }
    return -(int64_t)(((uint64_t)(-(v + 1))) >> s) - 1;
}

/* gemmlowp SaturatingRoundingDoublingHighMul. */
static inline int32_t mite_srdhm(int32_t a, int32_t b) {
    int64_t ab, nudge;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT, exponent clamped to [0, 62]. */
static inline int32_t mite_rdbpot(int32_t x, int32_t exponent) {
    unsigned e = (unsigned)(exponent < 0 ? 0 : (exponent > 62 ? 62 : exponent));
    int64_t xv = x;
    int64_t mask = ((int64_t)1 << e) - 1;
    int64_t remainder = (int64_t)((uint64_t)xv & (uint64_t)mask);
    int64_t threshold = (mask >> 1) + (xv < 0 ? 1 : 0);
    return (int32_t)(mite_asr64(xv, e) + (remainder > threshold ? 1 : 0));
}

/* TFLite's double-rounding MultiplyByQuantizedMultiplier. */
static inline int32_t mite_qmul_double(int32_t x, int32_t multiplier, int32_t shift) {
    int32_t left = shift > 0 ? shift : 0;
    int32_t neg = shift == INT32_MIN ? INT32_MAX : -shift;
    int32_t right = neg > 0 ? neg : 0;
    int32_t shifted = left >= 32 ? 0 : mite_wrap_i32((uint32_t)x << (unsigned)left);
    return mite_rdbpot(mite_srdhm(shifted, multiplier), right);
}

/* TFLite's single-rounding MultiplyByQuantizedMultiplier. */
static inline int32_t mite_qmul_single(int32_t x, int32_t multiplier, int32_t shift) {
    /* |product| <= 2^62, so it fits in i64; Rust computes in i128. */
    int64_t product = (int64_t)x * (int64_t)multiplier;
    int64_t total = 31 - (int64_t)shift;
    if (total < -64) {
        total = -64;
    }
    if (total > 100) {
        total = 100;
    }
    if (total > 0) {
        if (total >= 64) {
            return 0; /* 0 < product + 2^(total-1) < 2^total */
        }
        if (total == 63) {
            return product == ((int64_t)1 << 62) ? 1 : 0;
        }
        return mite_sat_i32(mite_asr64(product + ((int64_t)1 << (total - 1)), (unsigned)total));
    } else {
        unsigned lsh = (unsigned)(-total);
        if (product == 0) {
            return 0;
        }
        if (lsh >= 32) {
            return product > 0 ? INT32_MAX : INT32_MIN;
        }
        if (product > (INT64_MAX >> lsh)) {
            return INT32_MAX;
        }
        if (product < INT64_MIN / ((int64_t)1 << lsh)) {
            return INT32_MIN;
        }
        return mite_sat_i32(product * ((int64_t)1 << lsh));
    }
}

/* Rust `Requant::apply`. */
static inline int32_t mite_requant_apply_inline(const mite_requant *r, int32_t acc,
                                                size_t channel) {
    size_t c = channel < r->channels - 1 ? channel : r->channels - 1;
    switch (r->rounding) {
    case MITE_ROUNDING_DOUBLE:
        return mite_qmul_double(acc, r->multipliers[c], r->shifts[c]);
    case MITE_ROUNDING_SINGLE:
        return mite_qmul_single(acc, r->multipliers[c], r->shifts[c]);
    case MITE_ROUNDING_FLOAT_SCALE:
        return mite_requantize_float_scale(acc, r->scales[c]);
    default:
        return mite_f64_to_i32(
            (double)mite_round_ties_even_f32((float)acc * (float)r->scales[c]));
    }
}

/* Rust `OutputStage::finish`: requantize, add the zero point with saturation, clamp. */
static inline int8_t mite_output_stage_finish(const mite_output_stage *s, int32_t acc,
                                              size_t channel) {
    int32_t v = mite_requant_apply_inline(&s->requant, acc, channel);
    return mite_clamp_act(s->range, mite_sadd(v, s->zero_point));
}

/* Rust `BiasAdd`: the bias joins the accumulator wrapping or saturating. */
static inline int32_t mite_bias_add_apply(mite_bias_add mode, int32_t acc, int32_t bias) {
    return mode == MITE_BIAS_WRAPPING ? mite_wadd(acc, bias) : mite_sadd(acc, bias);
}

/* mite_qmul_double for one multiplier and shift, its constants computed once (see
 * mite_finish_double_run for why it is exact): valid for a multiplier other than INT32_MIN and
 * a shift in (-32, 32). */
typedef struct {
    unsigned left, e;
    uint64_t half, half_neg;
    int64_t m, offset;
} mite_qmul_plan;

/* The plan of mite_qmul_double(., m, sh); returns 0 when m and sh are outside its range. */
static inline int mite_qmul_plan_init(mite_qmul_plan *q, int32_t m, int32_t sh) {
    if (m == INT32_MIN || sh <= -32 || sh >= 32) {
        return 0;
    }
    q->left = sh > 0 ? (unsigned)sh : 0u;
    q->e = sh < 0 ? (unsigned)-sh : 0u;
    q->half = ((uint64_t)1 << 31) + (q->e > 0 ? (uint64_t)1 << (q->e - 1u) : 0u);
    q->half_neg = q->half - (q->e > 0 ? 1u : 0u);
    q->m = m;
    q->offset = (int64_t)1 << (32u - q->e);
    return 1;
}

/* mite_qmul_double(x, m, sh) by its plan. */
static inline int32_t mite_qmul_plan_apply(const mite_qmul_plan *q, int32_t x) {
    int64_t ab = (int64_t)mite_wrap_i32((uint32_t)x << q->left) * q->m;
    uint64_t t = ((uint64_t)ab + ((uint64_t)1 << 62) + ((uint64_t)1 << 30)) >> 31;
    return (int32_t)((int64_t)((t + (t < ((uint64_t)1 << 31) ? q->half_neg : q->half)) >>
                               q->e) -
                     q->offset);
}

/* mite_finish_run with double rounding for a multiplier other than INT32_MIN and a shift in
 * (-32, 32), given as its left shift and its right exponent e (one of them zero):
 * mite_qmul_double in unsigned 64-bit arithmetic with every constant computed once,
 * then the zero point and the clamp in one step (clamping the exact sum to the activation
 * range equals saturating to i32 first). Exactly mite_qmul_double, as follows. With
 * ab = (a << left) * m, |ab| < 2^62, the doubling high multiply's truncated
 * (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 equals floor((ab + 2^30) / 2^31) = t for every
 * sign, so T = t + 2^31 = (ab + 2^62 + 2^30) >> 31 (nonnegative, below 2^32; t < 0 iff
 * T < 2^31). The rounding divide by 2^e of t adds 1 when the remainder exceeds
 * 2^(e-1) - 1 + (t < 0), i.e. it is floor((t + h - (t < 0)) / 2^e) with h = 2^(e-1), or t
 * itself when e = 0 (h = 0 and no negative adjustment); offset by 2^32 (a multiple of 2^e)
 * that is ((T + 2^31 + h - adj) >> e) - 2^(32-e). */
static inline void mite_finish_double_run(const mite_output_stage *st, int wrapping,
                                          int32_t bias, const int32_t *acc, int8_t *y,
                                          size_t len, int32_t m, unsigned left,
                                          unsigned e) {
    const uint64_t nudge = ((uint64_t)1 << 62) + ((uint64_t)1 << 30);
    /* 2^31 + h - adj; T >> 31 is 1 exactly when t >= 0, giving the adj back */
    const uint64_t half_neg = ((uint64_t)1 << 31) + (e > 0 ? ((uint64_t)1 << (e - 1u)) - 1u : 0u);
    const int64_t base = (int64_t)st->zero_point - ((int64_t)1 << (32u - e));
    const int64_t lo = st->range.min, hi = st->range.max, mv = m;
    size_t i;
    for (i = 0; i < len; i++) {
        int32_t a = wrapping ? mite_wadd(acc[i], bias) : mite_sadd(acc[i], bias);
        int64_t ab = (int64_t)mite_wrap_i32((uint32_t)a << left) * mv;
        uint64_t t = ((uint64_t)ab + nudge) >> 31;
        int64_t v = (int64_t)((t + half_neg + (e > 0 ? t >> 31 : 0u)) >> e) + base;
        y[i] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
    }
}

/* Elements per chunk of mite_finish_double_chunks. */
#define MITE_FINISH_CHUNK 8u

/* mite_finish_double_run for a right shift e in [2, 31], no left shift, a nonnegative
 * multiplier m and the (int8) zero point zp, in chunks of MITE_FINISH_CHUNK through
 * local arrays (the last chunk padded) so that gcc vectorises it at -O2 (SSE2's pmuludq is the
 * 32x32->64 multiply). The same integers in narrower lanes: the bias is added after clamping
 * the accumulator to [lo_b, hi_b] (for saturation the range whose sum with the bias fits in
 * i32, so the wrapping sum equals the saturated one; for wrapping all of i32); with the sum a
 * as u32 ua, ua * m - ((ua >> 31) * m << 32) is a * m modulo 2^64, so T and the rounding shift
 * are those of mite_finish_double_run; the result plus zp - 2^(32-e) (= base) lies in
 * [-2^31, 2^31) for e >= 2 and |zp| <= 128, so its wrapping u32 sum is exact, then clamped. */
static inline void mite_finish_double_chunks(const int32_t *acc, int8_t *y, size_t len,
                                             int32_t lo_b, int32_t hi_b, int32_t bias,
                                             uint32_t m, unsigned e, int32_t base, int32_t lo,
                                             int32_t hi) {
    const uint64_t nudge = ((uint64_t)1 << 62) + ((uint64_t)1 << 30);
    const uint64_t half_neg = ((uint64_t)1 << 31) + ((uint64_t)1 << (e - 1u)) - 1u;
    size_t i, k, n;
    for (i = 0; i < len; i += n) {
        int32_t a[MITE_FINISH_CHUNK], v[MITE_FINISH_CHUNK];
        int8_t o[MITE_FINISH_CHUNK];
        n = len - i < MITE_FINISH_CHUNK ? len - i : MITE_FINISH_CHUNK;
        if (n == MITE_FINISH_CHUNK) {
            for (k = 0; k < MITE_FINISH_CHUNK; k++) {
                a[k] = acc[i + k];
            }
        } else {
            for (k = 0; k < n; k++) {
                a[k] = acc[i + k];
            }
            for (; k < MITE_FINISH_CHUNK; k++) {
                a[k] = 0;
            }
        }
        for (k = 0; k < MITE_FINISH_CHUNK; k++) {
            int32_t x = a[k] < lo_b ? lo_b : (a[k] > hi_b ? hi_b : a[k]);
            uint32_t ua = (uint32_t)x + (uint32_t)bias;
            uint64_t prod = (uint64_t)ua * m - ((uint64_t)(ua >> 31) * m << 32);
            uint64_t t = (prod + nudge) >> 31;
            uint64_t u = (t + half_neg + (t >> 31)) >> e;
            int32_t r = mite_wrap_i32((uint32_t)u + (uint32_t)base);
            v[k] = r < lo ? lo : (r > hi ? hi : r);
        }
        for (k = 0; k < MITE_FINISH_CHUNK; k++) {
            o[k] = (int8_t)v[k];
        }
        if (n == MITE_FINISH_CHUNK) {
            for (k = 0; k < MITE_FINISH_CHUNK; k++) {
                y[i + k] = o[k];
            }
        } else {
            for (k = 0; k < n; k++) {
                y[i + k] = o[k];
            }
        }
    }
}

#ifdef MITE_ARM_DSP
/* mite_finish_double_chunks for a 32-bit core (the Arm DSP path): a right shift e in [1, 31],
 * no left shift, a multiplier m other than INT32_MIN and the bias range [lo_b, hi_b] and base
 * zp - 2^(31-e) (note: 31, not 32) given by mite_finish_run, in 32-bit arithmetic apart from
 * the one 32x32->64 multiply (SMULL). Exactly mite_qmul_double, as follows. The biased a is that
 * of mite_finish_double_chunks. |a * m| <= 2^31 (2^31 - 1) < 2^62, so (as in
 * mite_finish_double_run) T = (a * m + 2^62 + 2^30) >> 31 lies in [0, 2^32) and is t + 2^31,
 * t the doubling high multiply; T is taken as the uint32_t of that shift. The rounding divide
 * of t by 2^e is floor(t / 2^e) plus one when the remainder r = t mod 2^e exceeds
 * 2^(e-1) - 1 + (t < 0). Since 2^e divides 2^31: floor(t / 2^e) = (T >> e) - 2^(31-e),
 * r = T & (2^e - 1), and t < 0 iff T >> 31 is 0, so the condition is
 * r + (T >> 31) > 2^(e-1) (no overflow: the left side is at most 2^e). The result plus the
 * zero point is (T >> e) + [that condition] + base, in [-2^30 - 128, 2^30 + 127]: exact in
 * int32_t (so the saturating zero-point addition does not saturate), then clamped to the
 * activation range. */
static inline void mite_finish_double_run32(const int32_t *acc, int8_t *y, size_t len,
                                            int32_t lo_b, int32_t hi_b, int32_t bias, int32_t m,
                                            unsigned e, int32_t base, int32_t lo, int32_t hi) {
    const uint64_t nudge = ((uint64_t)1 << 62) + ((uint64_t)1 << 30);
    const uint32_t mask = ((uint32_t)1 << e) - 1u, h = (uint32_t)1 << (e - 1u);
    size_t i;
    for (i = 0; i < len; i++) {
        int32_t x = acc[i] < lo_b ? lo_b : (acc[i] > hi_b ? hi_b : acc[i]);
        int32_t a = mite_dsp_word((uint32_t)x + (uint32_t)bias);
        uint32_t t = (uint32_t)(((uint64_t)((int64_t)a * m) + nudge) >> 31);
        int32_t v = (int32_t)(t >> e) + ((t & mask) + (t >> 31) > h ? 1 : 0) + base;
        y[i] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
    }
}
#endif

/* The output stage of channel o over a run of accumulators: the same bias addition and
 * mite_output_stage_finish as one output at a time, with the rounding mode chosen once. */
static inline void mite_finish_run(const mite_output_stage *st, mite_bias_add mode,
                                   int32_t bias, const int32_t *acc, int8_t *y, size_t len,
                                   size_t o) {
    const mite_requant *r = &st->requant;
    size_t c = o < r->channels - 1 ? o : r->channels - 1, i;
    if (r->rounding == MITE_ROUNDING_DOUBLE && r->multipliers[c] != INT32_MIN &&
        r->shifts[c] > -32 && r->shifts[c] < 32) {
        /* each case with constant arguments, so the loop is specialised (no left shift for
         * the usual multiplier below one) */
        int32_t m = r->multipliers[c], sh = r->shifts[c];
        int wrapping = mode == MITE_BIAS_WRAPPING;
#ifdef MITE_ARM_DSP
        if (sh < 0) {
            int64_t lo_b = wrapping ? INT32_MIN : (int64_t)INT32_MIN - bias;
            int64_t hi_b = wrapping ? INT32_MAX : (int64_t)INT32_MAX - bias;
            unsigned e = (unsigned)-sh;
            mite_finish_double_run32(
                acc, y, len, (int32_t)(lo_b < INT32_MIN ? INT32_MIN : lo_b),
                (int32_t)(hi_b > INT32_MAX ? INT32_MAX : hi_b), bias, m, e,
                (int32_t)((int64_t)st->zero_point - ((int64_t)1 << (31u - e))), st->range.min,
                st->range.max);
            return;
        }
#endif
        if (sh <= -2 && m >= 0) {
            int64_t lo_b = wrapping ? INT32_MIN : (int64_t)INT32_MIN - bias;
            int64_t hi_b = wrapping ? INT32_MAX : (int64_t)INT32_MAX - bias;
            unsigned e = (unsigned)-sh;
            mite_finish_double_chunks(
                acc, y, len, (int32_t)(lo_b < INT32_MIN ? INT32_MIN : lo_b),
                (int32_t)(hi_b > INT32_MAX ? INT32_MAX : hi_b), bias, (uint32_t)m, e,
                (int32_t)((int64_t)st->zero_point - ((int64_t)1 << (32u - e))), st->range.min,
                st->range.max);
        } else if (sh < 0 && wrapping) {
            mite_finish_double_run(st, 1, bias, acc, y, len, m, 0, (unsigned)-sh);
        } else if (sh < 0) {
            mite_finish_double_run(st, 0, bias, acc, y, len, m, 0, (unsigned)-sh);
        } else {
            mite_finish_double_run(st, wrapping, bias, acc, y, len, m, (unsigned)sh, 0);
        }
    } else if (r->rounding == MITE_ROUNDING_DOUBLE) {
        int32_t m = r->multipliers[c], sh = r->shifts[c];
        for (i = 0; i < len; i++) {
            int32_t v = mite_qmul_double(mite_bias_add_apply(mode, acc[i], bias), m, sh);
            y[i] = mite_clamp_act(st->range, mite_sadd(v, st->zero_point));
        }
    } else if (r->rounding == MITE_ROUNDING_SINGLE) {
        int32_t m = r->multipliers[c], sh = r->shifts[c];
        for (i = 0; i < len; i++) {
            int32_t v = mite_qmul_single(mite_bias_add_apply(mode, acc[i], bias), m, sh);
            y[i] = mite_clamp_act(st->range, mite_sadd(v, st->zero_point));
        }
    } else {
        for (i = 0; i < len; i++) {
            y[i] = mite_output_stage_finish(st, mite_bias_add_apply(mode, acc[i], bias), o);
        }
    }
}

/* The zero point of channel c in a list checked by mite_check_zero_points. */
static inline int32_t mite_zero_point_of(const int8_t *zps, size_t len, size_t c) {
    if (len == 0) {
        return 0;
    }
    return len == 1 ? zps[0] : zps[c];
}

#endif /* MITE_INTERNAL_H */
