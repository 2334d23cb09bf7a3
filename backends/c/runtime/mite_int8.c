/*
 * mite_int8.c - int8 forward kernels (mirrors mite-kernels' int8 module): convolution with
 * dense, depthwise and pointwise paths, fully connected, add, average / global average pooling,
 * mean, quantize / dequantize / requantize. Products and sums wrap in i32 like the Rust kernels.
 */
#include "mite_internal.h"

#include <math.h>

/* ---------------------------------------------------------------- convolution */

size_t mite_conv2d_int8_scratch_len(const mite_conv2d_int8_params *p) {
    return p->geometry.out_hw[0] * p->geometry.out_hw[1];
}

static void accumulate_pointwise(int32_t *plane, size_t len, const int8_t *x, int32_t wv,
                                 int32_t zx) {
    size_t i;
    if (wv == 0) {
        return;
    }
    for (i = 0; i < len; i++) {
        plane[i] = mite_wadd(plane[i], mite_wmul((int32_t)x[i] - zx, wv));
    }
}

static void accumulate_taps(int32_t *plane, const int8_t *x, const int8_t *wk, int32_t zw,
                            int32_t zx, const mite_conv2d_geometry *g) {
    mite_window_axis axes[2];
    mite_tap_rows it;
    size_t w_in, ow, sw, ox, ix;
    mite_conv_axes(g, axes);
    w_in = axes[1].in_len;
    ow = axes[1].out_len;
    sw = axes[1].stride;
    mite_tap_rows_init(&it, axes);
    while (mite_tap_rows_next(&it)) {
        int32_t wv = (int32_t)wk[it.row_tap] - zw;
        int32_t *row = plane + it.row_oy * ow;
        const int8_t *x_row = x + it.row_iy * w_in;
        if (wv == 0) {
            continue;
        }
        for (ox = it.row_ox_lo, ix = it.row_ix0; ox < it.row_ox_hi; ox++, ix += sw) {
            row[ox] = mite_wadd(row[ox], mite_wmul((int32_t)x_row[ix] - zx, wv));
        }
    }
}

/* ---- fast paths. They compute the exact integer sums in plain i32 arithmetic (equal to the
 * wrapping one when nothing overflows, and then free to vectorise): with |x| <= 128, |zx| <= 128
 * and |w - zw| <= 255, a pointwise accumulator (below) stays within 2 * 32640 * c_in in magnitude
 * and a depthwise one within 2 * 32640 * taps, so both fit for at most MITE_EXACT_TERMS terms.
 * Requantization is the generic path's. */
#define MITE_EXACT_TERMS 32768u

/* Elements per chunk of the exact accumulation loops: a constant trip count lets the compiler
 * vectorise them at -O2 too. */
#define MITE_CHUNK 16u

#ifndef MITE_ARM_DSP
/* plane[i] += w0 * x0[i] + w1 * x1[i] + w2 * x2[i] + w3 * x3[i] (exact i32 sums), in chunks. */
static void accumulate4(int32_t *restrict plane, const int8_t *restrict x0,
                        const int8_t *restrict x1, const int8_t *restrict x2,
                        const int8_t *restrict x3, int32_t w0, int32_t w1, int32_t w2, int32_t w3,
                        size_t len) {
    size_t i = 0, k;
    for (; i + MITE_CHUNK <= len; i += MITE_CHUNK) {
        for (k = 0; k < MITE_CHUNK; k++) {
            plane[i + k] += w0 * x0[i + k] + w1 * x1[i + k] + w2 * x2[i + k] + w3 * x3[i + k];
        }
    }
    for (; i < len; i++) {
        plane[i] += w0 * x0[i] + w1 * x1[i] + w2 * x2[i] + w3 * x3[i];
    }
}
#endif

/* Pointwise (1x1, stride 1, no padding, groups 1): per output channel, an i32 plane
 * accumulates w'[o, c] * x[c] over the input channels, four at a time, where w' = w - zw; it
 * starts at -zx * sum_c w'[o, c], so that it ends at sum_c w'[o, c] * (x[c] - zx). */
static void conv_pointwise(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *out,
                           int32_t *plane, const mite_conv2d_int8_params *p) {
    const mite_conv2d_geometry *g = &p->geometry;
    size_t len = g->in_hw[0] * g->in_hw[1], c_in = g->c_in, c_out = g->c_out;
    int32_t zx = p->x_zero_point;
    size_t b, o, c, i;
    for (b = 0; b < g->n; b++) {
        const int8_t *xb = x + b * c_in * len;
        for (o = 0; o < c_out; o++) {
            int32_t zw = mite_zero_point_of(p->w_zero_points, p->w_zero_points_len, o);
            const int8_t *wo = w + o * c_in;
            int32_t wsum = 0, start;
            for (c = 0; c < c_in; c++) {
                wsum += (int32_t)wo[c] - zw;
            }
            start = -zx * wsum;
            for (i = 0; i < len; i++) {
                plane[i] = start;
            }
#ifdef MITE_ARM_DSP
            /* the same exact sums, two channels per SMLAD */
            mite_dsp_pointwise_pairs(xb, len, c_in, wo, zw, len, plane);
            c = c_in - c_in % 2;
#else
            for (c = 0; c + 4 <= c_in; c += 4) {
                int32_t w0 = (int32_t)wo[c] - zw, w1 = (int32_t)wo[c + 1] - zw;
                int32_t w2 = (int32_t)wo[c + 2] - zw, w3 = (int32_t)wo[c + 3] - zw;
                const int8_t *x0 = xb + c * len, *x1 = x0 + len, *x2 = x1 + len, *x3 = x2 + len;
                accumulate4(plane, x0, x1, x2, x3, w0, w1, w2, w3, len);
            }
#endif
            for (; c < c_in; c++) {
                int32_t wv = (int32_t)wo[c] - zw;
                const int8_t *xc = xb + c * len;
                for (i = 0; i < len; i++) {
                    plane[i] += wv * xc[i];
                }
            }
            mite_finish_run(&p->out, p->bias_add, bias != NULL ? bias[o] : 0, plane,
                       out + (b * c_out + o) * len, len, o);
        }
    }
}

/* The accumulator of one depthwise output (oy, ox) over its taps [ky_lo, ky_hi) x
 * [kx_lo, kx_hi), the ones that read real input of the plane xp. */
static int32_t depthwise_sum(const int8_t *xp, const mite_window_axis *ay,
                             const mite_window_axis *ax, const int8_t *wk, int32_t zw,
                             int32_t zx, size_t oy, size_t ox, size_t ky_lo, size_t ky_hi,
                             size_t kx_lo, size_t kx_hi) {
    int32_t acc = 0;
    size_t ky, kx;
    for (ky = ky_lo; ky < ky_hi; ky++) {
        const int8_t *row = xp + mite_axis_input_index(ay, oy, ky) * ax->in_len;
        const int8_t *wr = wk + ky * ax->kernel;
        for (kx = kx_lo; kx < kx_hi; kx++) {
            acc += ((int32_t)row[mite_axis_input_index(ax, ox, kx)] - zx) *
                   ((int32_t)wr[kx] - zw);
        }
    }
    return acc;
}

/* An interior depthwise row (every tap reads real input) with the kernel size kh x kw; called
 * with constants for the common sizes so that the tap loops unroll. Each sum starts at
 * start = -zx * sum_t wv[t], so that it ends at sum_t wv[t] * (x_t - zx). */
static inline void depthwise_interior(const int8_t *xp, const mite_window_axis *ay,
                                      const mite_window_axis *ax, const int32_t *wv, size_t kh,
                                      size_t kw, int32_t start, size_t oy, size_t ox_lo,
                                      size_t ox_hi, int32_t *acc) {
    size_t w_in = ax->in_len, sx = ax->stride, dx = ax->dilation;
    size_t iy0 = oy * ay->stride - ay->pad_begin, dy = ay->dilation;
    size_t ox, ky, kx;
    for (ox = ox_lo; ox < ox_hi; ox++) {
        const int8_t *base = xp + iy0 * w_in + (ox * sx - ax->pad_begin);
        int32_t sum = start;
        for (ky = 0; ky < kh; ky++) {
            const int8_t *row = base + ky * dy * w_in;
            for (kx = 0; kx < kw; kx++) {
                sum += row[kx * dx] * wv[ky * kw + kx];
            }
        }
        acc[ox] = sum;
    }
}

#define MITE_DW_MAX_TAPS 49u

/* Depthwise (groups == c_in == c_out) with at most MITE_DW_MAX_TAPS taps: the interior of each
 * plane without padding checks, the border output by output with its valid tap ranges. The
 * accumulators of one output row live in the scratch plane. */
static void conv_depthwise(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *out,
                           int32_t *plane, const mite_conv2d_int8_params *p) {
    const mite_conv2d_geometry *g = &p->geometry;
    mite_window_axis axes[2];
    size_t kh = g->window.kernel[0], kw = g->window.kernel[1], taps = kh * kw;
    size_t in_plane = g->in_hw[0] * g->in_hw[1];
    size_t oh = g->out_hw[0], ow = g->out_hw[1], c_all = g->c_out;
    size_t oy_in_lo, oy_in_hi, ox_in_lo, ox_in_hi, lo, hi, bc, oy, ox, t;
    int32_t zx = p->x_zero_point;
    int32_t wv[MITE_DW_MAX_TAPS];
    mite_conv_axes(g, axes);
    /* Outputs where every tap is valid: the first tap's lower and the last tap's upper bound. */
    mite_axis_valid_outputs(&axes[0], 0, &oy_in_lo, &hi);
    mite_axis_valid_outputs(&axes[0], kh - 1, &lo, &oy_in_hi);
    mite_axis_valid_outputs(&axes[1], 0, &ox_in_lo, &hi);
    mite_axis_valid_outputs(&axes[1], kw - 1, &lo, &ox_in_hi);
    if (ox_in_hi < ox_in_lo) {
        ox_in_hi = ox_in_lo;
    }
    for (bc = 0; bc < g->n * c_all; bc++) {
        size_t c = bc % c_all;
        int32_t zw = mite_zero_point_of(p->w_zero_points, p->w_zero_points_len, c);
        int32_t bias_c = bias != NULL ? bias[c] : 0;
        const int8_t *xp = x + bc * in_plane;
        const int8_t *wk = w + c * taps;
        int8_t *y = out + bc * oh * ow;
        int32_t start = 0;
        for (t = 0; t < taps; t++) {
            wv[t] = (int32_t)wk[t] - zw;
            start -= zx * wv[t];
        }
        for (oy = 0; oy < oh; oy++) {
            size_t ky_lo, ky_hi, kx_lo, kx_hi;
            int32_t *acc = plane + oy * ow;
            mite_axis_valid_taps(&axes[0], oy, &ky_lo, &ky_hi);
            if (oy >= oy_in_lo && oy < oy_in_hi) {
                if (kh == 3 && kw == 3) {
                    depthwise_interior(xp, &axes[0], &axes[1], wv, 3, 3, start, oy, ox_in_lo,
                                       ox_in_hi, acc);
                } else if (kh == 5 && kw == 5) {
                    depthwise_interior(xp, &axes[0], &axes[1], wv, 5, 5, start, oy, ox_in_lo,
                                       ox_in_hi, acc);
                } else if (kh == 7 && kw == 7) {
                    depthwise_interior(xp, &axes[0], &axes[1], wv, 7, 7, start, oy, ox_in_lo,
                                       ox_in_hi, acc);
                } else {
                    depthwise_interior(xp, &axes[0], &axes[1], wv, kh, kw, start, oy, ox_in_lo,
                                       ox_in_hi, acc);
                }
            }
            for (ox = 0; ox < ow; ox++) {
                if (oy >= oy_in_lo && oy < oy_in_hi && ox >= ox_in_lo && ox < ox_in_hi) {
                    continue; /* interior, done above */
                }
                mite_axis_valid_taps(&axes[1], ox, &kx_lo, &kx_hi);
                acc[ox] = depthwise_sum(xp, &axes[0], &axes[1], wk, zw, zx, oy, ox, ky_lo, ky_hi,
                                        kx_lo, kx_hi);
            }
            mite_finish_run(&p->out, p->bias_add, bias_c, acc, y + oy * ow, ow, c);
        }
    }
}

mite_status mite_conv2d_int8(const int8_t *x, size_t x_len, const int8_t *w, size_t w_len,
                             const int32_t *bias, size_t bias_len, int8_t *out, size_t out_len,
                             int32_t *scratch, size_t scratch_len,
                             const mite_conv2d_int8_params *p) {
    const mite_conv2d_geometry *g = &p->geometry;
    size_t in_plane = g->in_hw[0] * g->in_hw[1];
    size_t plane_len = g->out_hw[0] * g->out_hw[1];
    size_t cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    size_t taps = g->window.kernel[0] * g->window.kernel[1];
    size_t input_len = g->n * g->c_in * in_plane, output_len = g->n * g->c_out * plane_len;
    size_t weight_len = g->c_out * cin_g * taps;
    int32_t zx = p->x_zero_point;
    int pointwise = g->groups == 1 && g->window.kernel[0] == 1 && g->window.kernel[1] == 1 &&
                    g->window.strides[0] == 1 && g->window.strides[1] == 1 &&
                    g->window.pads[0] == 0 && g->window.pads[1] == 0 &&
                    g->window.pads[2] == 0 && g->window.pads[3] == 0;
    size_t bo, i, ci;
    mite_status st;
    if ((st = mite_check_len("conv2d x", input_len, x_len)) != MITE_OK ||
        (st = mite_check_len("conv2d w", weight_len, w_len)) != MITE_OK ||
        (st = mite_check_len("conv2d out", output_len, out_len)) != MITE_OK) {
        return st;
    }
    if (bias != NULL && (st = mite_check_len("conv2d bias", g->c_out, bias_len)) != MITE_OK) {
        return st;
    }
    if ((st = mite_check_zero_points(p->w_zero_points_len, g->c_out)) != MITE_OK ||
        (st = mite_output_stage_check(&p->out, g->c_out)) != MITE_OK ||
        (st = mite_check_scratch(plane_len, scratch_len)) != MITE_OK) {
        return st;
    }
    if (output_len == 0) {
        return MITE_OK;
    }
    if (pointwise && cin_g <= MITE_EXACT_TERMS) {
        conv_pointwise(x, w, bias, out, scratch, p);
        return MITE_OK;
    }
    if (cin_g == 1 && cout_g == 1 && taps <= MITE_DW_MAX_TAPS) {
        conv_depthwise(x, w, bias, out, scratch, p);
        return MITE_OK;
    }
    for (bo = 0; bo < output_len / plane_len; bo++) {
        size_t b = bo / g->c_out, o = bo % g->c_out;
        size_t group = o / cout_g;
        int32_t zw = mite_zero_point_of(p->w_zero_points, p->w_zero_points_len, o);
        int32_t bias_o = bias != NULL ? bias[o] : 0;
        int8_t *y = out + bo * plane_len;
        for (i = 0; i < plane_len; i++) {
            scratch[i] = 0;
        }
        for (ci = 0; ci < cin_g; ci++) {
            size_t c = group * cin_g + ci;
            const int8_t *xp = x + (b * g->c_in + c) * in_plane;
            const int8_t *wk = w + (o * cin_g + ci) * taps;
            if (pointwise) {
                accumulate_pointwise(scratch, plane_len, xp, (int32_t)wk[0] - zw, zx);
            } else {
                accumulate_taps(scratch, xp, wk, zw, zx, g);
            }
        }
        mite_finish_run(&p->out, p->bias_add, bias_o, scratch, y, plane_len, o);
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- fully connected */

mite_status mite_linear_int8(const int8_t *x, size_t x_len, const int8_t *w, size_t w_len,
                             const int32_t *bias, size_t bias_len, int8_t *out, size_t out_len,
                             const mite_linear_int8_params *p) {
    size_t n = p->geometry.batch, k = p->geometry.in_features, m = p->geometry.out_features;
    size_t r, o, i, rows;
    int32_t zx = p->x_zero_point;
    mite_status st;
    if ((st = mite_check_len("linear x", n * k, x_len)) != MITE_OK ||
        (st = mite_check_len("linear w", m * k, w_len)) != MITE_OK ||
        (st = mite_check_len("linear out", n * m, out_len)) != MITE_OK) {
        return st;
    }
    if (bias != NULL && (st = mite_check_len("linear bias", m, bias_len)) != MITE_OK) {
        return st;
    }
    if ((st = mite_check_zero_points(p->w_zero_points_len, m)) != MITE_OK ||
        (st = mite_output_stage_check(&p->out, m)) != MITE_OK) {
        return st;
    }
    if (k == 0) {
        for (i = 0; i < out_len; i++) {
            o = i % m;
            out[i] = mite_output_stage_finish(
                &p->out, mite_bias_add_apply(p->bias_add, 0, bias != NULL ? bias[o] : 0), o);
        }
        return MITE_OK;
    }
    /* Rows present in both x (k per row) and out (max(m, 1) per row). */
    rows = x_len / k;
    if (out_len / (m > 0 ? m : 1) < rows) {
        rows = out_len / (m > 0 ? m : 1);
    }
    for (r = 0; r < rows; r++) {
        const int8_t *row = x + r * k;
        int8_t *y = out + r * m;
        for (o = 0; o < m; o++) {
            const int8_t *wr = w + o * k;
            int32_t zw = mite_zero_point_of(p->w_zero_points, p->w_zero_points_len, o);
            int32_t acc = 0;
            for (i = 0; i < k; i++) {
                acc = mite_wadd(acc, mite_wmul((int32_t)row[i] - zx, (int32_t)wr[i] - zw));
            }
            y[o] = mite_output_stage_finish(
                &p->out, mite_bias_add_apply(p->bias_add, acc, bias != NULL ? bias[o] : 0), o);
        }
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- add */

int8_t mite_add_one(const mite_add_params *p, int8_t a, int8_t b) {
    int32_t da = (int32_t)a - p->a.zero_point;
    int32_t db = (int32_t)b - p->b.zero_point;
    int32_t raw;
    if (p->rounding == MITE_ROUNDING_FLOAT_SCALE) {
        float sum = (float)da * p->a.scale + (float)db * p->b.scale;
        raw = mite_f64_to_i32(mite_round_ties_even_f64((double)sum / (double)p->out.scale));
    } else {
        /* |da|, |db| <= 255: the shifted values stay below 2^28. */
        int32_t sa = mite_rounding_multiply(p->rounding, da * (1 << MITE_ADD_LEFT_SHIFT),
                                            p->input_multipliers[0][0],
                                            p->input_multipliers[0][1]);
        int32_t sb = mite_rounding_multiply(p->rounding, db * (1 << MITE_ADD_LEFT_SHIFT),
                                            p->input_multipliers[1][0],
                                            p->input_multipliers[1][1]);
        raw = mite_rounding_multiply(p->rounding, mite_wadd(sa, sb), p->output_multiplier[0],
                                     p->output_multiplier[1]);
    }
    return mite_clamp_act(p->range, mite_sadd(raw, p->out.zero_point));
}

mite_status mite_add_int8(const int8_t *a, size_t a_len, const int8_t *b, size_t b_len,
                          int8_t *out, size_t out_len, const mite_add_params *p) {
    size_t i;
    mite_status st;
    if ((st = mite_check_len("add b", a_len, b_len)) != MITE_OK ||
        (st = mite_check_len("add out", a_len, out_len)) != MITE_OK) {
        return st;
    }
    if (p->rounding == MITE_ROUNDING_DOUBLE) {
        /* mite_add_one with the double-rounding multiplies inlined, planned once when the
         * multipliers and shifts allow it. */
        int32_t ma = p->input_multipliers[0][0], sa = p->input_multipliers[0][1];
        int32_t mb = p->input_multipliers[1][0], sb = p->input_multipliers[1][1];
        int32_t mo = p->output_multiplier[0], so = p->output_multiplier[1];
        int32_t za = p->a.zero_point, zb = p->b.zero_point;
        mite_qmul_plan qa, qb, qo;
        if (mite_qmul_plan_init(&qa, ma, sa) && mite_qmul_plan_init(&qb, mb, sb) &&
            mite_qmul_plan_init(&qo, mo, so)) {
            int64_t zo = p->out.zero_point, lo = p->range.min, hi = p->range.max;
            for (i = 0; i < a_len; i++) {
                int32_t ra = mite_qmul_plan_apply(&qa, ((int32_t)a[i] - za) * (1 << MITE_ADD_LEFT_SHIFT));
                int32_t rb = mite_qmul_plan_apply(&qb, ((int32_t)b[i] - zb) * (1 << MITE_ADD_LEFT_SHIFT));
                /* clamping the exact sum to the activation range equals saturating first */
                int64_t v = (int64_t)mite_qmul_plan_apply(&qo, mite_wadd(ra, rb)) + zo;
                out[i] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
            }
            return MITE_OK;
        }
        for (i = 0; i < a_len; i++) {
            int32_t ra =
                mite_qmul_double(((int32_t)a[i] - za) * (1 << MITE_ADD_LEFT_SHIFT), ma, sa);
            int32_t rb =
                mite_qmul_double(((int32_t)b[i] - zb) * (1 << MITE_ADD_LEFT_SHIFT), mb, sb);
            int32_t raw = mite_qmul_double(mite_wadd(ra, rb), mo, so);
            out[i] = mite_clamp_act(p->range, mite_sadd(raw, p->out.zero_point));
        }
        return MITE_OK;
    }
    for (i = 0; i < a_len; i++) {
        out[i] = mite_add_one(p, a[i], b[i]);
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- pooling */

static int64_t div_round_half_away(int64_t sum, int64_t count) {
    return sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
}

static int64_t div_round_half_even(int64_t sum, int64_t count) {
    int64_t q = sum / count, r = sum % count;
    if (r < 0) {
        r += count;
        q -= 1;
    }
    if (2 * r < count) {
        return q;
    }
    if (2 * r > count) {
        return q + 1;
    }
    return q + (q & 1);
}

mite_status mite_avg_pool_int8(const int8_t *x, size_t x_len, const size_t dims[4],
                               const mite_window2d *window, mite_act_range range, int8_t *out,
                               size_t out_len) {
    size_t n = dims[0], c = dims[1], h = dims[2], w = dims[3];
    size_t len, odims[4], oh, ow, planes, pl, oy, ox, ky, kx;
    mite_window_axis axes[2];
    mite_status st;
    if ((st = mite_act_range_check(range)) != MITE_OK ||
        (st = mite_checked_product(dims, 4, &len)) != MITE_OK ||
        (st = mite_check_len("avg_pool x", len, x_len)) != MITE_OK ||
        (st = mite_window_axes(window, dims + 2, axes)) != MITE_OK) {
        return st;
    }
    oh = axes[0].out_len;
    ow = axes[1].out_len;
    odims[0] = n;
    odims[1] = c;
    odims[2] = oh;
    odims[3] = ow;
    if ((st = mite_checked_product(odims, 4, &len)) != MITE_OK ||
        (st = mite_check_len("avg_pool out", len, out_len)) != MITE_OK) {
        return st;
    }
    if (oh * ow == 0) {
        return MITE_OK;
    }
    if (h * w == 0) {
        /* Every window lies in the padding (mite-kernels panics here: chunks of size 0). */
        return n * c == 0 ? MITE_OK : mite_fail(MITE_ERR_EMPTY_WINDOW, "", 0, 0, 0);
    }
    planes = x_len / (h * w);
    if (out_len / (oh * ow) < planes) {
        planes = out_len / (oh * ow);
    }
    for (pl = 0; pl < planes; pl++) {
        const int8_t *plane = x + pl * h * w;
        int8_t *y = out + pl * oh * ow;
        for (oy = 0; oy < oh; oy++) {
            size_t r_lo, r_hi;
            mite_axis_valid_taps(&axes[0], oy, &r_lo, &r_hi);
            for (ox = 0; ox < ow; ox++) {
                size_t c_lo, c_hi;
                int64_t count, sum = 0;
                mite_axis_valid_taps(&axes[1], ox, &c_lo, &c_hi);
                count = (int64_t)((r_hi - r_lo) * (c_hi - c_lo));
                if (count == 0) {
                    return mite_fail(MITE_ERR_EMPTY_WINDOW, "", 0, 0, 0);
                }
                for (ky = r_lo; ky < r_hi; ky++) {
                    size_t iy = mite_axis_input_index(&axes[0], oy, ky);
                    for (kx = c_lo; kx < c_hi; kx++) {
                        sum += plane[iy * w + mite_axis_input_index(&axes[1], ox, kx)];
                    }
                }
                y[oy * ow + ox] = mite_clamp_act(range, (int32_t)div_round_half_away(sum, count));
            }
        }
    }
    return MITE_OK;
}

static mite_status global_count(size_t len, const size_t dims[4], size_t *count) {
    size_t total;
    mite_status st;
    if ((st = mite_checked_product(dims, 4, &total)) != MITE_OK ||
        (st = mite_check_len("global pool x", total, len)) != MITE_OK) {
        return st;
    }
    *count = dims[2] * dims[3];
    if (*count == 0) {
        return mite_fail(MITE_ERR_GEOMETRY, "global pooling over an empty plane", 0, 0, 0);
    }
    return MITE_OK;
}

mite_status mite_global_avg_pool_int8(const int8_t *x, size_t x_len, const size_t dims[4],
                                      mite_rounding rounding, int8_t *out, size_t out_len) {
    size_t count, pl, i, planes;
    mite_status st;
    if ((st = global_count(x_len, dims, &count)) != MITE_OK ||
        (st = mite_check_len("global_avg_pool out", dims[0] * dims[1], out_len)) != MITE_OK) {
        return st;
    }
    planes = x_len / count;
    for (pl = 0; pl < planes && pl < out_len; pl++) {
        int64_t sum = 0, mean;
        for (i = 0; i < count; i++) {
            sum += x[pl * count + i];
        }
        if (rounding == MITE_ROUNDING_DOUBLE || rounding == MITE_ROUNDING_SINGLE) {
            mean = div_round_half_away(sum, (int64_t)count);
        } else {
            mean = div_round_half_even(sum, (int64_t)count);
        }
        out[pl] = (int8_t)mean; /* the mean of int8 values is an int8 value */
    }
    return MITE_OK;
}

mite_status mite_mean_int8(const int8_t *x, size_t x_len, const size_t dims[4], int8_t *out,
                           size_t out_len, const mite_mean_params *p) {
    size_t count, pl, i, planes;
    int32_t zi = p->input.zero_point;
    int64_t zo = p->output.zero_point;
    mite_status st;
    if ((st = global_count(x_len, dims, &count)) != MITE_OK ||
        (st = mite_check_len("mean out", dims[0] * dims[1], out_len)) != MITE_OK) {
        return st;
    }
    if (count > ((size_t)1 << 23)) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "mean over more than 2^23 elements overflows the int32 accumulator", 0,
                         0, 0);
    }
    planes = x_len / count;
    for (pl = 0; pl < planes && pl < out_len; pl++) {
        int32_t acc = 0;
        int64_t mean, v;
        for (i = 0; i < count; i++) {
            acc += (int32_t)x[pl * count + i] - zi; /* |x - z| <= 255, count <= 2^23 */
        }
        if (p->rounding == MITE_ROUNDING_DOUBLE || p->rounding == MITE_ROUNDING_SINGLE) {
            mean = div_round_half_away(
                mite_rounding_multiply(p->rounding, acc, p->multiplier[0], p->multiplier[1]),
                (int64_t)count);
        } else {
            mean = mite_f64_to_i64(
                mite_round_ties_even_f64((double)acc * p->real / (double)count));
        }
        /* saturating_add, then clamp to i8 */
        if (zo > 0 && mean > INT64_MAX - zo) {
            v = INT64_MAX;
        } else if (zo < 0 && mean < INT64_MIN - zo) {
            v = INT64_MIN;
        } else {
            v = mean + zo;
        }
        out[pl] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- quantize */

int8_t mite_quantize_one(float x, float scale, int8_t zero_point) {
    double q;
    if (isnan(x)) {
        return zero_point;
    }
    q = (double)mite_round_ties_even_f32(x / scale) + (double)zero_point;
    q = q < -128.0 ? -128.0 : (q > 127.0 ? 127.0 : q);
    return (int8_t)q;
}

mite_status mite_quantize(const float *x, size_t x_len, int8_t *out, size_t out_len,
                          const mite_per_axis *p) {
    size_t i;
    float s;
    int8_t z;
    mite_status st = mite_check_len("quantize out", x_len, out_len);
    if (st != MITE_OK) {
        return st;
    }
    for (i = 0; i < x_len; i++) {
        mite_per_axis_of(p, i, &s, &z);
        out[i] = mite_quantize_one(x[i], s, z);
    }
    return MITE_OK;
}

mite_status mite_dequantize(const int8_t *x, size_t x_len, float *out, size_t out_len,
                            const mite_per_axis *p) {
    size_t i;
    float s;
    int8_t z;
    mite_status st = mite_check_len("dequantize out", x_len, out_len);
    if (st != MITE_OK) {
        return st;
    }
    for (i = 0; i < x_len; i++) {
        mite_per_axis_of(p, i, &s, &z);
        out[i] = (float)((int16_t)x[i] - (int16_t)z) * s;
    }
    return MITE_OK;
}

mite_status mite_requantize(const int8_t *x, size_t x_len, int8_t *out, size_t out_len,
                            mite_quant_params from, mite_quant_params to) {
    size_t i;
    mite_status st;
    if ((st = mite_scale_check(from.scale)) != MITE_OK ||
        (st = mite_scale_check(to.scale)) != MITE_OK ||
        (st = mite_check_len("requantize out", x_len, out_len)) != MITE_OK) {
        return st;
    }
    for (i = 0; i < x_len; i++) {
        float real = (float)((int16_t)x[i] - (int16_t)from.zero_point) * from.scale;
        out[i] = mite_quantize_one(real, to.scale, to.zero_point);
    }
    return MITE_OK;
}
