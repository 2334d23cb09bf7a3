/*
 * mite_common.c - errors, exact float rounding, fixed-point arithmetic, geometry and
 * requantization shared by the kernels (mirrors mite-kernels' error, fmath, fixed_point,
 * geometry and requant modules).
 */
#include "mite_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Bit-exactness with mite-kernels needs float and double arithmetic evaluated in their own
 * precision (no x87 extended precision). */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD > 0
#error "mite kernels need FLT_EVAL_METHOD == 0 (use SSE2 on x86: -msse2 -mfpmath=sse)"
#endif

static mite_error last_error = {MITE_OK, "", 0, 0, 0};

const mite_error *mite_last_error(void) { return &last_error; }

mite_status mite_fail(mite_status code, const char *message, size_t expected, size_t found,
                      size_t index) {
    last_error.code = code;
    last_error.message = message;
    last_error.expected = expected;
    last_error.found = found;
    last_error.index = index;
    return code;
}

mite_status mite_check_len(const char *what, size_t expected, size_t found) {
    return expected == found ? MITE_OK : mite_fail(MITE_ERR_LENGTH, what, expected, found, 0);
}

mite_status mite_check_scratch(size_t needed, size_t found) {
    return found >= needed ? MITE_OK : mite_fail(MITE_ERR_SCRATCH, "", needed, found, 0);
}

int mite_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) {
        return 0;
    }
    *out = a * b;
    return 1;
}

mite_status mite_checked_product(const size_t *dims, size_t count, size_t *product) {
    size_t acc = 1, i;
    for (i = 0; i < count; i++) {
        if (!mite_mul_ok(acc, dims[i], &acc)) {
            return mite_fail(MITE_ERR_GEOMETRY, "tensor size overflows usize", 0, 0, 0);
        }
    }
    *product = acc;
    return MITE_OK;
}


/* ---------------------------------------------------------------- exact rounding */

#define MITE_F64_INT 4503599627370496.0 /* 2^52 */
#define MITE_F32_INT 8388608.0f         /* 2^23 */

double mite_round_ties_even_f64(double x) { return mite_round_ties_even_f64_inline(x); }

float mite_round_ties_even_f32(float x) {
    float r;
    if (isnan(x) || fabsf(x) >= MITE_F32_INT) {
        return x;
    }
    r = (fabsf(x) + MITE_F32_INT) - MITE_F32_INT;
    return copysignf(r, x); /* signbit(x) ? -r : r for the nonnegative r, without a branch */
}

double mite_trunc_f64(double x) {
    double t;
    if (isnan(x) || fabs(x) >= MITE_F64_INT) {
        return x;
    }
    t = (double)(int64_t)x;
    return signbit(x) ? -fabs(t) : t;
}

double mite_floor_f64(double x) {
    double t = mite_trunc_f64(x);
    return t > x ? t - 1.0 : t;
}

double mite_round_half_away_f64(double x) {
    double t;
    if (isnan(x) || fabs(x) >= MITE_F64_INT) {
        return x;
    }
    t = mite_trunc_f64(x);
    if (fabs(x - t) >= 0.5) {
        return t + (x > 0.0 ? 1.0 : -1.0);
    }
    return t;
}

int32_t mite_f64_to_i32(double x) {
    if (isnan(x)) {
        return 0;
    }
    if (x >= 2147483647.0) {
        return INT32_MAX;
    }
    if (x <= -2147483648.0) {
        return INT32_MIN;
    }
    return (int32_t)x;
}

int64_t mite_f64_to_i64(double x) {
    if (isnan(x)) {
        return 0;
    }
    if (x >= 9223372036854775808.0) {
        return INT64_MAX;
    }
    if (x <= -9223372036854775808.0) {
        return INT64_MIN;
    }
    return (int64_t)x;
}

/* 2^e for e in [-126, 127], exactly. */
static float pow2_f32(int32_t e) {
    uint32_t bits = (uint32_t)((e < -126 ? -126 : (e > 127 ? 127 : e)) + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ln 2 split so that k * LN2_HI is exact for |k| < 2^9. */
#define MITE_LN2_HI 0.69314575f
#define MITE_LN2_LO 1.4286068e-6f
#define MITE_LOG2_E 1.44269504088896340736f
#define MITE_SQRT_2 1.41421356237309504880f

float mite_exp_f32(float x) {
    float k, r, p;
    int32_t ki;
    if (isnan(x)) {
        return x;
    }
    if (x > 88.72284f) {
        return INFINITY;
    }
    if (x < -103.97208f) {
        return 0.0f;
    }
    k = mite_round_ties_even_f32(x * MITE_LOG2_E);
    r = (x - k * MITE_LN2_HI) - k * MITE_LN2_LO;
    p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    ki = (int32_t)k; /* an integer in [-150, 128] */
    if (ki > 127) {
        return p * pow2_f32(127) * pow2_f32(ki - 127);
    }
    if (ki < -126) {
        return p * pow2_f32(-126) * pow2_f32(ki + 126);
    }
    return p * pow2_f32(ki);
}

float mite_ln_f32(float x) {
    uint32_t bits;
    int32_t e = 0;
    float m, s, s2, q, ln_m, ef;
    if (isnan(x) || x < 0.0f) {
        return NAN;
    }
    if (x == 0.0f) {
        return -INFINITY;
    }
    if (x == INFINITY) {
        return x;
    }
    if (x < FLT_MIN) {
        x *= 8388608.0f;
        e = -23;
    }
    memcpy(&bits, &x, sizeof bits);
    e += (int32_t)((bits >> 23) & 0xffu) - 127;
    bits = (bits & 0x007fffffu) | 0x3f800000u;
    memcpy(&m, &bits, sizeof m);
    if (m > MITE_SQRT_2) {
        m *= 0.5f;
        e += 1;
    }
    s = (m - 1.0f) / (m + 1.0f);
    s2 = s * s;
    q = 1.0f / 11.0f;
    q = q * s2 + 1.0f / 9.0f;
    q = q * s2 + 1.0f / 7.0f;
    q = q * s2 + 1.0f / 5.0f;
    q = q * s2 + 1.0f / 3.0f;
    q = q * s2;
    ln_m = 2.0f * s + 2.0f * s * q;
    ef = (float)e;
    return ef * MITE_LN2_HI + (ln_m + ef * MITE_LN2_LO);
}

/* ---------------------------------------------------------------- fixed point */

int32_t mite_saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
    return mite_srdhm(a, b);
}

int32_t mite_rounding_divide_by_pot(int32_t x, int32_t exponent) {
    return mite_rdbpot(x, exponent);
}

int32_t mite_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift) {
    return mite_qmul_double(x, multiplier, shift);
}

int32_t mite_multiply_by_quantized_multiplier_single_rounding(int32_t x, int32_t multiplier,
                                                              int32_t shift) {
    return mite_qmul_single(x, multiplier, shift);
}

int32_t mite_requantize_float_scale(int32_t x, double scale) {
    return mite_f64_to_i32(mite_round_ties_even_f64((double)x * scale));
}

int32_t mite_rounding_multiply(mite_rounding r, int32_t x, int32_t multiplier, int32_t shift) {
    if (r == MITE_ROUNDING_SINGLE) {
        return mite_qmul_single(x, multiplier, shift);
    }
    return mite_qmul_double(x, multiplier, shift);
}

/* ---------------------------------------------------------------- requantization */

mite_status mite_act_range_check(mite_act_range r) {
    return r.min <= r.max
               ? MITE_OK
               : mite_fail(MITE_ERR_PARAM, "activation range is empty (min > max)", 0, 0, 0);
}

mite_status mite_scale_check(float scale) {
    return (isfinite(scale) && scale > 0.0f)
               ? MITE_OK
               : mite_fail(MITE_ERR_PARAM, "quantization scale must be finite and positive", 0,
                           0, 0);
}

int32_t mite_requant_apply(const mite_requant *r, int32_t acc, size_t channel) {
    return mite_requant_apply_inline(r, acc, channel);
}

mite_status mite_output_stage_check(const mite_output_stage *s, size_t channels) {
    mite_status st = mite_act_range_check(s->range);
    if (st != MITE_OK) {
        return st;
    }
    if (s->requant.channels == 1 || s->requant.channels == channels) {
        return MITE_OK;
    }
    return mite_fail(MITE_ERR_LENGTH, "requantizer channels", channels, s->requant.channels, 0);
}

mite_status mite_check_zero_points(size_t len, size_t channels) {
    if (len == 0 || len == 1 || len == channels) {
        return MITE_OK;
    }
    return mite_fail(MITE_ERR_LENGTH, "weight zero points", channels, len, 0);
}

/* ---------------------------------------------------------------- geometry */

int mite_window2d_output_size(const mite_window2d *w, const size_t in_hw[2], size_t out_hw[2]) {
    size_t d, padded, span;
    for (d = 0; d < 2; d++) {
        if (w->strides[d] == 0 || w->dilations[d] == 0 || w->kernel[d] == 0) {
            return 0;
        }
        padded = in_hw[d] + w->pads[d];
        if (padded < in_hw[d]) {
            return 0;
        }
        if (padded + w->pads[d + 2] < padded) {
            return 0;
        }
        padded += w->pads[d + 2];
        if (!mite_mul_ok(w->dilations[d], w->kernel[d] - 1, &span) || span + 1 < span) {
            return 0;
        }
        span += 1;
        if (padded < span) {
            return 0;
        }
        out_hw[d] = (padded - span) / w->strides[d] + 1;
    }
    return 1;
}

static void fill_axis(mite_window_axis *a, const mite_window2d *w, size_t d, size_t in_len,
                      size_t out_len) {
    a->in_len = in_len;
    a->out_len = out_len;
    a->kernel = w->kernel[d];
    a->stride = w->strides[d];
    a->dilation = w->dilations[d];
    a->pad_begin = w->pads[d];
}

mite_status mite_window_axes(const mite_window2d *w, const size_t in_hw[2],
                             mite_window_axis axes[2]) {
    size_t out[2], d;
    if (!mite_window2d_output_size(w, in_hw, out)) {
        return mite_fail(MITE_ERR_GEOMETRY, "the window does not fit the padded input", 0, 0, 0);
    }
    for (d = 0; d < 2; d++) {
        fill_axis(&axes[d], w, d, in_hw[d], out[d]);
    }
    return MITE_OK;
}

void mite_conv_axes(const mite_conv2d_geometry *g, mite_window_axis axes[2]) {
    size_t d;
    for (d = 0; d < 2; d++) {
        fill_axis(&axes[d], &g->window, d, g->in_hw[d], g->out_hw[d]);
    }
}

mite_status mite_conv2d_geometry_init(mite_conv2d_geometry *g, size_t n, size_t c_in,
                                      const size_t in_hw[2], size_t c_out, size_t groups,
                                      const mite_window2d *window) {
    size_t dims[4], p;
    mite_status st;
    if (groups == 0 || c_in % groups != 0 || c_out % groups != 0) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "conv2d groups must be positive and divide c_in and c_out", 0, 0, 0);
    }
    if (!mite_window2d_output_size(window, in_hw, g->out_hw)) {
        return mite_fail(MITE_ERR_GEOMETRY, "conv2d window does not fit the input", 0, 0, 0);
    }
    g->n = n;
    g->c_in = c_in;
    g->in_hw[0] = in_hw[0];
    g->in_hw[1] = in_hw[1];
    g->c_out = c_out;
    g->groups = groups;
    g->window = *window;
    dims[0] = n;
    dims[1] = c_in;
    dims[2] = in_hw[0];
    dims[3] = in_hw[1];
    if ((st = mite_checked_product(dims, 4, &p)) != MITE_OK) {
        return st;
    }
    dims[1] = c_out;
    dims[2] = g->out_hw[0];
    dims[3] = g->out_hw[1];
    if ((st = mite_checked_product(dims, 4, &p)) != MITE_OK) {
        return st;
    }
    dims[0] = c_out;
    dims[1] = c_in / groups;
    dims[2] = window->kernel[0];
    dims[3] = window->kernel[1];
    return mite_checked_product(dims, 4, &p);
}

mite_status mite_linear_geometry_init(mite_linear_geometry *g, size_t batch, size_t in_features,
                                      size_t out_features) {
    size_t p;
    if (!mite_mul_ok(batch, in_features, &p) || !mite_mul_ok(batch, out_features, &p) ||
        !mite_mul_ok(out_features, in_features, &p)) {
        return mite_fail(MITE_ERR_GEOMETRY, "tensor size overflows usize", 0, 0, 0);
    }
    g->batch = batch;
    g->in_features = in_features;
    g->out_features = out_features;
    return MITE_OK;
}

void mite_tap_rows_init(mite_tap_rows *it, const mite_window_axis axes[2]) {
    it->ay = axes[0];
    it->ax = axes[1];
    it->ki = 0;
    it->kj = 0;
    it->oy = 0;
    it->oy_hi = 0;
    it->ox_lo = 0;
    it->ox_hi = 0;
    it->started = 0;
}

int mite_tap_rows_next(mite_tap_rows *it) {
    size_t lo;
    for (;;) {
        if (!it->started) {
            /* Position on tap (ki, kj) and compute its output ranges. */
            if (it->ax.kernel == 0 || it->ki >= it->ay.kernel) {
                return 0;
            }
            mite_axis_valid_outputs(&it->ay, it->ki, &lo, &it->oy_hi);
            it->oy = lo;
            mite_axis_valid_outputs(&it->ax, it->kj, &it->ox_lo, &it->ox_hi);
            it->started = 1;
            if (it->ox_lo >= it->ox_hi) {
                it->oy = it->oy_hi; /* the tap reads no input column */
            }
        }
        if (it->oy < it->oy_hi) {
            it->row_oy = it->oy;
            it->row_iy = mite_axis_input_index(&it->ay, it->oy, it->ki);
            it->row_ox_lo = it->ox_lo;
            it->row_ox_hi = it->ox_hi;
            it->row_ix0 = mite_axis_input_index(&it->ax, it->ox_lo, it->kj);
            it->row_tap = it->ki * it->ax.kernel + it->kj;
            it->oy++;
            return 1;
        }
        /* Next tap. */
        it->started = 0;
        it->kj++;
        if (it->kj >= it->ax.kernel) {
            it->kj = 0;
            it->ki++;
        }
    }
}

void mite_tap_span_of(const mite_window_axis axes[2], size_t t, mite_tap_span *span) {
    size_t ki = t / axes[1].kernel, kj = t % axes[1].kernel;
    mite_axis_valid_outputs(&axes[0], ki, &span->oy_lo, &span->oy_hi);
    mite_axis_valid_outputs(&axes[1], kj, &span->ox_lo, &span->ox_hi);
    if (span->ox_lo >= span->ox_hi) {
        span->oy_hi = span->oy_lo; /* the tap reads no input column */
    }
    span->iy0 = mite_axis_input_index(&axes[0], span->oy_lo, ki);
    span->ix0 = mite_axis_input_index(&axes[1], span->ox_lo, kj);
}

int mite_tap_spans(const mite_window_axis axes[2], mite_tap_span spans[MITE_TAP_TABLE]) {
    size_t taps = axes[0].kernel * axes[1].kernel, t;
    if (taps > MITE_TAP_TABLE) {
        return 0;
    }
    for (t = 0; t < taps; t++) {
        mite_tap_span_of(axes, t, &spans[t]);
    }
    return 1;
}

int mite_conv_is_pointwise(const mite_conv2d_geometry *g) {
    const mite_window2d *w = &g->window;
    return w->kernel[0] == 1 && w->kernel[1] == 1 && w->strides[0] == 1 && w->strides[1] == 1 &&
           w->pads[0] == 0 && w->pads[1] == 0 && w->pads[2] == 0 && w->pads[3] == 0;
}
