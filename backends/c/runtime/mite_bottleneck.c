/*
 * mite_bottleneck.c - the streamed frozen inverted bottleneck (Rust
 * `mite_kernels::int8::bottleneck_int8`): a dense first convolution (a pointwise expansion, or
 * any window such as a 3x3 stride-2 stem), a depthwise convolution and a pointwise projection
 * computed row by row through a ring of rows of the first convolution's output, in the same
 * loop order and with the same arithmetic as the Rust kernel (bit-exact); and two bottlenecks
 * streamed into one another (Rust `mite_kernels::int8::bottleneck_chain_int8`): the first
 * block's output rows produced on demand into a ring of a few rows for the second, whose
 * pointwise expansion is computed per channel from that ring; and the same chain in place
 * (Rust `mite_kernels::int8::bottleneck_chain_int8_in_place`): its output rows staged in the
 * input's second channel as the input rows under them die, then transposed to the front.
 */
#include <string.h>

#include "mite_internal.h"

/* Outputs are computed in runs of at most this many accumulators (on the stack), each run
 * finished by mite_finish_run. Accumulation is in uint32_t, i.e. exactly the Rust kernel's
 * wrapping i32 sums (wrapping addition is associative, so the order of terms and the folded
 * zero point below do not change the result). */
#define MITE_BN_RUN 32u

static int is_pointwise(const mite_conv2d_geometry *g) {
    const mite_window2d *w = &g->window;
    return g->groups == 1 && w->kernel[0] == 1 && w->kernel[1] == 1 && w->strides[0] == 1 &&
           w->strides[1] == 1 && w->pads[0] == 0 && w->pads[1] == 0 && w->pads[2] == 0 &&
           w->pads[3] == 0;
}

static int is_depthwise(const mite_conv2d_geometry *g) {
    return g->groups == g->c_in && g->groups == g->c_out;
}

static size_t ring_rows(const mite_bottleneck_int8_params *p) {
    mite_window_axis axes[2];
    size_t span;
    mite_conv_axes(&p->depthwise.geometry, axes);
    span = axes[0].dilation * (axes[0].kernel - 1) + 1;
    return span < axes[0].in_len ? span : axes[0].in_len;
}

size_t mite_bottleneck_int8_scratch_len(const mite_bottleneck_int8_params *p) {
    const mite_conv2d_geometry *d = &p->depthwise.geometry;
    return d->c_in * ring_rows(p) * d->in_hw[1] + d->c_in * d->out_hw[1];
}

static mite_status check_params(const mite_bottleneck_int8_params *p) {
    const mite_conv2d_geometry *e = &p->expand.geometry, *d = &p->depthwise.geometry,
                               *pr = &p->project.geometry;
    const mite_conv2d_int8_params *convs[3];
    size_t i;
    mite_status st;
    if (e->groups != 1) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck: the first convolution must be dense (one group)", 0, 0, 0);
    }
    if (!is_depthwise(d)) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck: the middle convolution must be depthwise (one channel per "
                         "group)",
                         0, 0, 0);
    }
    if (!is_pointwise(pr)) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck: the projection must be a pointwise (1x1, stride 1, no "
                         "padding) convolution",
                         0, 0, 0);
    }
    if (e->n != d->n || d->n != pr->n) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck: the three convolutions have different batch sizes", 0, 0, 0);
    }
    if (e->c_out != d->c_in || e->out_hw[0] != d->in_hw[0] || e->out_hw[1] != d->in_hw[1]) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck: the expansion's output is not the depthwise convolution's "
                         "input",
                         0, 0, 0);
    }
    if (d->c_out != pr->c_in || d->out_hw[0] != pr->in_hw[0] || d->out_hw[1] != pr->in_hw[1]) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck: the depthwise output is not the projection's input", 0, 0,
                         0);
    }
    convs[0] = &p->expand;
    convs[1] = &p->depthwise;
    convs[2] = &p->project;
    for (i = 0; i < 3; i++) {
        if ((st = mite_check_zero_points(convs[i]->w_zero_points_len,
                                         convs[i]->geometry.c_out)) != MITE_OK ||
            (st = mite_output_stage_check(&convs[i]->out, convs[i]->geometry.c_out)) != MITE_OK) {
            return st;
        }
    }
    return MITE_OK;
}

/* The output stage of channel o over len <= MITE_BN_RUN wrapped accumulators, read in place
 * as int32_t: C lets an object be read through the signed type of its own width (C99 6.5p7),
 * and int32_t is two's complement without padding, so each reads as mite_wrap_i32 of it. */
static void finish_wrapped(const uint32_t *acc, size_t len, int8_t *y,
                           const mite_conv2d_int8_params *conv, int32_t bias, size_t o) {
    mite_finish_run(&conv->out, conv->bias_add, bias, (const int32_t *)(const void *)acc, y, len,
                    o);
}

/* Outputs per short chunk of pointwise_run's inner loops (a long chunk is two): constant trip
 * counts, so gcc vectorises them at -O2 (its very cheap cost model wants no epilogue); the long
 * chunk fills 16-byte vectors with int8 loads. */
#define MITE_BN_CHUNK 8u

/* y[i] = output stage of sum_c (w_o[c] - zw) * (x[c * stride + i] - zx) for i < len <=
 * MITE_BN_RUN: a pointwise convolution over one run of a row. The accumulators start at
 * -zx * sum_c (w_o[c] - zw), so the inner loops multiply raw inputs. Each product
 * (w_o[c] - zw) * x has |w_o[c] - zw| <= 255 and -128 <= x <= 127, so it lies in
 * [-32640, 32640] and is computed exactly in 16 bits (SSE2 pmullw; SSE2 has no 32-bit
 * multiply); two of them sum exactly in 32 bits and join the wrapping uint32_t accumulators
 * (the Rust kernel's wrapping i32 sums: the same integers in another order, which wrapping
 * addition does not see). */
static void pointwise_run(const int8_t *x, size_t stride, size_t c_in, const int8_t *w_o,
                          int32_t zw, int32_t zx, size_t len, int8_t *y,
                          const mite_conv2d_int8_params *conv, int32_t bias, size_t o) {
    uint32_t acc[MITE_BN_RUN], wsum = 0, start;
    size_t c, i, k;
    /* sum_c (w_o[c] - zw) = sum_c w_o[c] - c_in * zw modulo 2^32, the raw weights summed in
     * chunks of 16 (|sum| <= 2048, exact in 32 bits; a reduction gcc vectorises at -O2) */
    for (c = 0; c + 16 <= c_in; c += 16) {
        int32_t s = 0;
        for (k = 0; k < 16; k++) {
            s += w_o[c + k];
        }
        wsum += (uint32_t)s;
    }
    for (; c < c_in; c++) {
        wsum += (uint32_t)(int32_t)w_o[c];
    }
    wsum -= (uint32_t)c_in * (uint32_t)zw;
    start = (uint32_t)0 - (uint32_t)zx * wsum;
    for (i = 0; i < len; i++) {
        acc[i] = start;
    }
#ifdef MITE_ARM_DSP
    /* the wrapped accumulators read and written in place as int32_t (see finish_wrapped) */
    mite_dsp_pointwise_pairs(x, stride, c_in, w_o, zw, len, (int32_t *)(void *)acc);
    c = c_in - c_in % 2;
#else
    for (c = 0; c + 2 <= c_in; c += 2) {
        int16_t w0 = (int16_t)(w_o[c] - zw), w1 = (int16_t)(w_o[c + 1] - zw);
        const int8_t *x0 = x + c * stride, *x1 = x0 + stride;
        for (i = 0; i + 2u * MITE_BN_CHUNK <= len; i += 2u * MITE_BN_CHUNK) {
            for (k = 0; k < 2u * MITE_BN_CHUNK; k++) {
                int16_t p0 = (int16_t)(w0 * x0[i + k]), p1 = (int16_t)(w1 * x1[i + k]);
                acc[i + k] += (uint32_t)((int32_t)p0 + p1);
            }
        }
        if (i + MITE_BN_CHUNK <= len) {
            for (k = 0; k < MITE_BN_CHUNK; k++) {
                int16_t p0 = (int16_t)(w0 * x0[i + k]), p1 = (int16_t)(w1 * x1[i + k]);
                acc[i + k] += (uint32_t)((int32_t)p0 + p1);
            }
            i += MITE_BN_CHUNK;
        }
        for (; i < len; i++) {
            acc[i] += (uint32_t)((int32_t)w0 * x0[i] + (int32_t)w1 * x1[i]);
        }
    }
#endif
    for (; c < c_in; c++) {
        int16_t wv = (int16_t)(w_o[c] - zw);
        const int8_t *xc = x + c * stride;
        for (i = 0; i < len; i++) {
            acc[i] += (uint32_t)((int32_t)wv * xc[i]);
        }
    }
    finish_wrapped(acc, len, y, conv, bias, o);
}

#ifdef MITE_ARM_DSP
/* The start of pointwise_run's accumulators: -zx * sum_c (w_o[c] - zw) modulo 2^32. */
static uint32_t pointwise_start(const int8_t *w_o, size_t c_in, int32_t zw, int32_t zx) {
    uint32_t wsum = 0;
    size_t c;
    for (c = 0; c < c_in; c++) {
        wsum += (uint32_t)(int32_t)w_o[c];
    }
    wsum -= (uint32_t)c_in * (uint32_t)zw;
    return (uint32_t)0 - (uint32_t)zx * wsum;
}

/* pointwise_run for the two output channels o and o + 1 (weights w_o and w_o + c_in, zero
 * points zw[0..1], biases bias[0..1], outputs y_a and y_b) over the same run of inputs: the
 * same sums, their inputs unpacked once for both (mite_dsp_pointwise_pairs2). */
static void pointwise_run2(const int8_t *x, size_t stride, size_t c_in, const int8_t *w_o,
                           const int32_t zw[2], int32_t zx, size_t len, int8_t *y_a,
                           int8_t *y_b, const mite_conv2d_int8_params *conv,
                           const int32_t bias[2], size_t o) {
    uint32_t acc_a[MITE_BN_RUN], acc_b[MITE_BN_RUN];
    uint32_t start_a = pointwise_start(w_o, c_in, zw[0], zx);
    uint32_t start_b = pointwise_start(w_o + c_in, c_in, zw[1], zx);
    size_t i;
    for (i = 0; i < len; i++) {
        acc_a[i] = start_a;
        acc_b[i] = start_b;
    }
    /* the wrapped accumulators read and written in place as int32_t (see finish_wrapped) */
    mite_dsp_pointwise_pairs2(x, stride, c_in, w_o, zw[0], w_o + c_in, zw[1], len,
                              (int32_t *)(void *)acc_a, (int32_t *)(void *)acc_b);
    if (c_in % 2 != 0) {
        const int8_t *xc = x + (c_in - 1) * stride;
        int32_t wa = w_o[c_in - 1] - zw[0], wb = w_o[2 * c_in - 1] - zw[1];
        for (i = 0; i < len; i++) {
            acc_a[i] += (uint32_t)(wa * xc[i]);
            acc_b[i] += (uint32_t)(wb * xc[i]);
        }
    }
    finish_wrapped(acc_a, len, y_a, conv, bias[0], o);
    finish_wrapped(acc_b, len, y_b, conv, bias[1], o + 1);
}
#endif

/* One row of every output channel of pointwise convolution conv (weights w, biases b or NULL)
 * over the input row x (its channels stride apart, width elements each), into row slot of out
 * viewed as [c_out, rows, width]: the bottleneck's expansion and projection. */
static void pointwise_rows(const int8_t *x, size_t stride, size_t width,
                           const mite_conv2d_int8_params *conv, const int8_t *w,
                           const int32_t *b, int8_t *out, size_t rows, size_t slot) {
    const mite_conv2d_geometry *g = &conv->geometry;
    size_t c, x0, len;
    for (c = 0; c < g->c_out; c++) {
        int32_t zw = mite_zero_point_of(conv->w_zero_points, conv->w_zero_points_len, c);
        int32_t bias = b != NULL ? b[c] : 0;
        int8_t *row = out + (c * rows + slot) * width;
#ifdef MITE_ARM_DSP
        if (c + 1 < g->c_out) {
            int32_t zws[2], biases[2];
            zws[0] = zw;
            zws[1] = mite_zero_point_of(conv->w_zero_points, conv->w_zero_points_len, c + 1);
            biases[0] = bias;
            biases[1] = b != NULL ? b[c + 1] : 0;
            for (x0 = 0; x0 < width; x0 += len) {
                len = width - x0 < MITE_BN_RUN ? width - x0 : MITE_BN_RUN;
                pointwise_run2(x + x0, stride, g->c_in, w + c * g->c_in, zws, conv->x_zero_point,
                               len, row + x0, row + rows * width + x0, conv, biases, c);
            }
            c++;
            continue;
        }
#endif
        for (x0 = 0; x0 < width; x0 += len) {
            len = width - x0 < MITE_BN_RUN ? width - x0 : MITE_BN_RUN;
            pointwise_run(x + x0, stride, g->c_in, w + c * g->c_in, zw, conv->x_zero_point, len,
                          row + x0, conv, bias, c);
        }
    }
}

/* Row my of a pointwise first convolution into ring slot my % rows. */
static void expand_row_pointwise(const int8_t *x, size_t my, int8_t *ring, size_t rows,
                                 const mite_bottleneck_int8_weights *wts,
                                 const mite_bottleneck_int8_params *p) {
    const mite_conv2d_geometry *g = &p->expand.geometry;
    size_t w = g->in_hw[1];
    pointwise_rows(x + my * w, g->in_hw[0] * w, w, &p->expand, wts->w_expand, wts->b_expand,
                   ring, rows, my % rows);
}

/* The sum over taps kx in [lo, hi) of (x_row[ix0 + kx * dx] - zx) * (wr[kx] - zw), wrapping. */
static uint32_t taps_sum(const int8_t *x_row, size_t ix0, size_t dx, const int8_t *wr, size_t lo,
                         size_t hi, uint32_t zx, uint32_t zw) {
    uint32_t sum = 0;
    size_t kx;
    for (kx = lo; kx < hi; kx++) {
        sum += ((uint32_t)(int32_t)x_row[ix0 + kx * dx] - zx) * ((uint32_t)(int32_t)wr[kx] - zw);
    }
    return sum;
}

/* Row my of any dense first convolution (such as a 3x3 stride-2 stem) into ring slot
 * my % rows, from the whole input x of one batch element. The valid taps of each output of a
 * run are found once for all output channels; a 3-wide window's outputs reading all three taps
 * are summed unrolled. */
static void expand_row(const int8_t *x, size_t my, int8_t *ring, size_t rows,
                       const mite_bottleneck_int8_weights *wts,
                       const mite_bottleneck_int8_params *p) {
    const mite_conv2d_int8_params *conv = &p->expand;
    const mite_conv2d_geometry *g = &conv->geometry;
    size_t w = g->in_hw[1], plane = g->in_hw[0] * g->in_hw[1];
    size_t kw = g->window.kernel[1], taps = g->window.kernel[0] * kw, mw = g->out_hw[1];
    uint32_t zx = (uint32_t)conv->x_zero_point;
    size_t slot = my % rows, c, x0, len, i, i_lo, i_hi, ci, ky, ky_lo, ky_hi, dx;
    size_t kx_lo[MITE_BN_RUN], kx_hi[MITE_BN_RUN], ix0[MITE_BN_RUN];
    uint32_t acc[MITE_BN_RUN];
    mite_window_axis axes[2];
    if (is_pointwise(g)) {
        expand_row_pointwise(x, my, ring, rows, wts, p);
        return;
    }
    mite_conv_axes(g, axes);
    dx = axes[1].dilation;
    mite_axis_valid_taps(&axes[0], my, &ky_lo, &ky_hi);
    for (x0 = 0; x0 < mw; x0 += len) {
        len = mw - x0 < MITE_BN_RUN ? mw - x0 : MITE_BN_RUN;
        for (i = 0; i < len; i++) {
            mite_axis_valid_taps(&axes[1], x0 + i, &kx_lo[i], &kx_hi[i]);
            /* wraps below zero for padded outputs; only kx >= kx_lo[i] is ever added */
            ix0[i] = (x0 + i) * axes[1].stride - axes[1].pad_begin;
        }
        /* [i_lo, i_hi): the first stretch of outputs reading all kw taps */
        for (i_lo = 0; i_lo < len && (kx_lo[i_lo] != 0 || kx_hi[i_lo] != kw); i_lo++) {
        }
        for (i_hi = i_lo; i_hi < len && kx_lo[i_hi] == 0 && kx_hi[i_hi] == kw; i_hi++) {
        }
        for (c = 0; c < g->c_out; c++) {
            uint32_t zw = (uint32_t)mite_zero_point_of(conv->w_zero_points,
                                                       conv->w_zero_points_len, c);
            const int8_t *w_c = wts->w_expand + c * g->c_in * taps;
            int32_t bias = wts->b_expand != NULL ? wts->b_expand[c] : 0;
            for (i = 0; i < len; i++) {
                acc[i] = 0;
            }
            for (ci = 0; ci < g->c_in; ci++) {
                const int8_t *xp = x + ci * plane;
                const int8_t *wk = w_c + ci * taps;
                for (ky = ky_lo; ky < ky_hi; ky++) {
                    const int8_t *x_row =
                        xp + (my * axes[0].stride + ky * axes[0].dilation - axes[0].pad_begin) *
                                 w;
                    const int8_t *wr = wk + ky * kw;
                    for (i = 0; i < i_lo; i++) {
                        acc[i] += taps_sum(x_row, ix0[i], dx, wr, kx_lo[i], kx_hi[i], zx, zw);
                    }
                    if (kw == 3) {
                        uint32_t w0 = (uint32_t)(int32_t)wr[0] - zw;
                        uint32_t w1 = (uint32_t)(int32_t)wr[1] - zw;
                        uint32_t w2 = (uint32_t)(int32_t)wr[2] - zw;
                        for (; i < i_hi; i++) {
                            const int8_t *xr = x_row + ix0[i];
                            acc[i] += ((uint32_t)(int32_t)xr[0] - zx) * w0 +
                                      ((uint32_t)(int32_t)xr[dx] - zx) * w1 +
                                      ((uint32_t)(int32_t)xr[2 * dx] - zx) * w2;
                        }
                    }
                    for (; i < len; i++) {
                        acc[i] += taps_sum(x_row, ix0[i], dx, wr, kx_lo[i], kx_hi[i], zx, zw);
                    }
                }
            }
            finish_wrapped(acc, len, ring + (c * rows + slot) * mw + x0, conv, bias, c);
        }
    }
}

#ifdef MITE_ARM_DSP
/* acc[i] += (x[i] - zx) * w0 + (x[i + 1] - zx) * w1 + (x[i + 2] - zx) * w2, wrapping, for
 * i < n (a multiple of 4): one row of a 3-wide, stride-1, undilated window over outputs whose
 * taps all read real input (x[0 .. n + 2)); w0, w1, w2 are the taps minus the weight zero point
 * (|w| <= 255) and corr = -zx * (w0 + w1 + w2) modulo 2^32, so each sum is
 * x[i] w0 + x[i + 1] w1 + x[i + 2] w2 + corr, the same integer modulo 2^32. Four outputs at a
 * time: the words (x0 x1 x2 x3) and (x2 x3 x4 x5) sign-extended give the halfword pairs
 * e = (x0, x2), o = (x1, x3), e2 = (x2, x4), o2 = (x3, x5) (SXTB16); each output takes its
 * outer taps from one pair by SMLAD with (w0, w2) and its middle tap x1, x2, x3, x4 from a
 * half of o, e, o, e2 by SMLABB / SMLATB. */
static void depthwise3_dsp(const int8_t *x, int32_t w0, int32_t w1, int32_t w2, uint32_t corr,
                           size_t n, uint32_t *acc) {
    int32_t w02 = mite_dsp_pack_lo(w0, w2), c = mite_dsp_word(corr);
    int32_t *a = (int32_t *)(void *)acc; /* read in place as int32_t (see finish_wrapped) */
    size_t i;
    for (i = 0; i + 4u <= n; i += 4u) {
        int32_t u = mite_dsp_load4(x + i), u2 = mite_dsp_load4(x + i + 2u);
        int32_t e = __sxtb16(u), o = __sxtb16(mite_dsp_ror8(u));
        int32_t e2 = __sxtb16(u2), o2 = __sxtb16(mite_dsp_ror8(u2));
        a[i] = __smlabb(o, w1, __smlad(e, w02, mite_dsp_word((uint32_t)a[i] + (uint32_t)c)));
        a[i + 1u] =
            __smlatb(e, w1, __smlad(o, w02, mite_dsp_word((uint32_t)a[i + 1u] + (uint32_t)c)));
        a[i + 2u] =
            __smlatb(o, w1, __smlad(e2, w02, mite_dsp_word((uint32_t)a[i + 2u] + (uint32_t)c)));
        a[i + 3u] =
            __smlatb(e2, w1, __smlad(o2, w02, mite_dsp_word((uint32_t)a[i + 3u] + (uint32_t)c)));
    }
}
#endif

/* Depthwise output row oy of channel c (y, ow elements) from that channel's ring of expanded
 * rows (plane: rows rows, row r in slot r % rows). Outputs whose taps all read real input (the
 * interior) are summed without bounds checks. */
static void depthwise_channel(const int8_t *plane, size_t rows, size_t oy,
                              const mite_window_axis *ay, const mite_window_axis *ax, int8_t *y,
                              size_t c, const mite_bottleneck_int8_weights *wts,
                              const mite_bottleneck_int8_params *p) {
    const mite_conv2d_int8_params *conv = &p->depthwise;
    const mite_conv2d_geometry *g = &conv->geometry;
    size_t w = ax->in_len, ow = ax->out_len, sx = ax->stride, dx = ax->dilation;
    size_t kh = g->window.kernel[0], kw = g->window.kernel[1];
    uint32_t zx = (uint32_t)conv->x_zero_point;
    uint32_t zw = (uint32_t)mite_zero_point_of(conv->w_zero_points, conv->w_zero_points_len, c);
    const int8_t *wk = wts->w_depthwise + c * kh * kw;
    int32_t bias = wts->b_depthwise != NULL ? wts->b_depthwise[c] : 0;
    size_t x0, len, i, i_lo, i_hi, ky, kx, ky_lo, ky_hi, in_lo, in_hi, lo1, hi1;
    size_t b_lo[MITE_BN_RUN], b_hi[MITE_BN_RUN], b_ix[MITE_BN_RUN];
    uint32_t acc[MITE_BN_RUN];
    mite_axis_valid_taps(ay, oy, &ky_lo, &ky_hi);
    /* interior outputs: the first and the last tap (so every tap) read real input */
    mite_axis_valid_outputs(ax, 0, &in_lo, &in_hi);
    if (kw > 1) {
        mite_axis_valid_outputs(ax, kw - 1, &lo1, &hi1);
        in_lo = lo1 > in_lo ? lo1 : in_lo;
        in_hi = hi1 < in_hi ? hi1 : in_hi;
    }
    if (in_hi < in_lo) {
        in_hi = in_lo;
    }
    for (x0 = 0; x0 < ow; x0 += len) {
        len = ow - x0 < MITE_BN_RUN ? ow - x0 : MITE_BN_RUN;
        /* the interior part [i_lo, i_hi) of this run */
        i_lo = in_lo > x0 ? (in_lo - x0 < len ? in_lo - x0 : len) : 0;
        i_hi = in_hi > x0 ? (in_hi - x0 < len ? in_hi - x0 : len) : 0;
        i_hi = i_hi > i_lo ? i_hi : i_lo;
        for (i = 0; i < len; i++) {
            acc[i] = 0;
            if (i < i_lo || i >= i_hi) {
                /* a border output: its valid taps once for every row of the window */
                mite_axis_valid_taps(ax, x0 + i, &b_lo[i], &b_hi[i]);
                /* wraps below zero for padded outputs; only kx >= b_lo[i] is ever added */
                b_ix[i] = (x0 + i) * sx - ax->pad_begin;
            }
        }
        for (ky = ky_lo; ky < ky_hi; ky++) {
            const int8_t *row = plane + (mite_axis_input_index(ay, oy, ky) % rows) * w;
            const int8_t *wr = wk + ky * kw;
            for (i = 0; i < i_lo; i++) {
                acc[i] += taps_sum(row, b_ix[i], dx, wr, b_lo[i], b_hi[i], zx, zw);
            }
            if (kw == 3) {
                uint32_t w0 = (uint32_t)(int32_t)wr[0] - zw;
                uint32_t w1 = (uint32_t)(int32_t)wr[1] - zw;
                uint32_t w2 = (uint32_t)(int32_t)wr[2] - zw;
                i = i_lo;
#ifdef MITE_ARM_DSP
                if (sx == 1 && dx == 1 && i_hi - i_lo >= 4u) {
                    size_t n = (i_hi - i_lo) & ~(size_t)3u;
                    depthwise3_dsp(row + (x0 + i_lo) - ax->pad_begin, mite_dsp_word(w0),
                                   mite_dsp_word(w1), mite_dsp_word(w2),
                                   ((uint32_t)0 - zx) * (w0 + w1 + w2), n, acc + i_lo);
                    i = i_lo + n;
                }
#endif
                for (; i < i_hi; i++) {
                    const int8_t *xr = row + (x0 + i) * sx - ax->pad_begin;
                    acc[i] += ((uint32_t)(int32_t)xr[0] - zx) * w0 +
                              ((uint32_t)(int32_t)xr[dx] - zx) * w1 +
                              ((uint32_t)(int32_t)xr[2 * dx] - zx) * w2;
                }
            } else {
                for (i = i_lo; i < i_hi; i++) {
                    const int8_t *xr = row + (x0 + i) * sx - ax->pad_begin;
                    uint32_t sum = 0;
                    for (kx = 0; kx < kw; kx++) {
                        sum += ((uint32_t)(int32_t)xr[kx * dx] - zx) *
                               ((uint32_t)(int32_t)wr[kx] - zw);
                    }
                    acc[i] += sum;
                }
            }
            for (i = i_hi; i < len; i++) {
                acc[i] += taps_sum(row, b_ix[i], dx, wr, b_lo[i], b_hi[i], zx, zw);
            }
        }
        finish_wrapped(acc, len, y + x0, conv, bias, c);
    }
}

/* Depthwise output row oy (all channels) from the expanded rows in the ring. */
static void depthwise_row(const int8_t *ring, size_t rows, size_t oy, const mite_window_axis *ay,
                          const mite_window_axis *ax, int8_t *dw_row,
                          const mite_bottleneck_int8_weights *wts,
                          const mite_bottleneck_int8_params *p) {
    size_t c, w = ax->in_len, ow = ax->out_len;
    for (c = 0; c < p->depthwise.geometry.c_out; c++) {
        depthwise_channel(ring + c * rows * w, rows, oy, ay, ax, dw_row + c * ow, c, wts, p);
    }
}

/* The row of every projection channel from one depthwise output row, into row slot of out
 * viewed as [c_out, rows, ow]. */
static void project_row(const int8_t *dw_row, int8_t *out, size_t rows, size_t slot,
                        const mite_bottleneck_int8_weights *wts,
                        const mite_bottleneck_int8_params *p) {
    size_t ow = p->project.geometry.in_hw[1];
    pointwise_rows(dw_row, ow, ow, &p->project, wts->w_project, wts->b_project, out, rows, slot);
}

/* The streaming state of one bottleneck over one batch element: its ring of rows of the first
 * convolution's output, its depthwise row, the next row of the first convolution to compute. */
typedef struct {
    int8_t *ring;
    int8_t *dw_row;
    size_t next_row;
} block_rows;

static void block_rows_init(block_rows *st, int8_t *scratch,
                            const mite_bottleneck_int8_params *p) {
    const mite_conv2d_geometry *d = &p->depthwise.geometry;
    st->ring = scratch;
    st->dw_row = scratch + d->c_in * ring_rows(p) * d->in_hw[1];
    st->next_row = 0;
}

/* Output row oy of block p (all channels) into row slot of out viewed as [c_out, rows, ow];
 * the rows of the first convolution's output it reads are computed from x_b first, each once.
 * Rows are taken in increasing order. */
static void block_output_row(block_rows *st, const int8_t *x_b, size_t oy,
                             const mite_bottleneck_int8_weights *wts,
                             const mite_bottleneck_int8_params *p, int8_t *out, size_t rows,
                             size_t slot) {
    size_t ring = ring_rows(p), lo, hi;
    mite_window_axis axes[2];
    mite_conv_axes(&p->depthwise.geometry, axes);
    mite_axis_valid_taps(&axes[0], oy, &lo, &hi);
    if (hi > lo) {
        size_t last_row = mite_axis_input_index(&axes[0], oy, hi - 1);
        while (st->next_row <= last_row) {
            expand_row(x_b, st->next_row, st->ring, ring, wts, p);
            st->next_row++;
        }
    }
    depthwise_row(st->ring, ring, oy, &axes[0], &axes[1], st->dw_row, wts, p);
    project_row(st->dw_row, out, rows, slot, wts, p);
}

/* The lengths of a block's weights and biases. */
static mite_status check_weights(const mite_bottleneck_int8_weights *wts,
                                 const mite_bottleneck_int8_params *p) {
    const mite_conv2d_geometry *e = &p->expand.geometry, *d = &p->depthwise.geometry,
                               *pr = &p->project.geometry;
    mite_status st = MITE_OK;
    if ((st = mite_check_len("expansion",
                             e->c_out * e->c_in * e->window.kernel[0] * e->window.kernel[1],
                             wts->w_expand_len)) != MITE_OK ||
        (wts->b_expand != NULL &&
         (st = mite_check_len("expansion", e->c_out, wts->b_expand_len)) != MITE_OK) ||
        (st = mite_check_len("depthwise", d->c_out * d->window.kernel[0] * d->window.kernel[1],
                             wts->w_depthwise_len)) != MITE_OK ||
        (wts->b_depthwise != NULL &&
         (st = mite_check_len("depthwise", d->c_out, wts->b_depthwise_len)) != MITE_OK) ||
        (st = mite_check_len("projection", pr->c_out * pr->c_in, wts->w_project_len)) !=
            MITE_OK ||
        (wts->b_project != NULL &&
         (st = mite_check_len("projection", pr->c_out, wts->b_project_len)) != MITE_OK)) {
        return st;
    }
    return st;
}

mite_status mite_bottleneck_int8(const int8_t *x, size_t x_len,
                                 const mite_bottleneck_int8_weights *wts, int8_t *out,
                                 size_t out_len, int8_t *scratch, size_t scratch_len,
                                 const mite_bottleneck_int8_params *p) {
    const mite_conv2d_geometry *e = &p->expand.geometry, *pr = &p->project.geometry;
    size_t e_in = e->n * e->c_in * e->in_hw[0] * e->in_hw[1];
    size_t pr_out = pr->n * pr->c_out * pr->out_hw[0] * pr->out_hw[1];
    size_t oh, b, oy;
    block_rows rows;
    mite_status st;
    if ((st = check_params(p)) != MITE_OK ||
        (st = mite_check_len("bottleneck x", e_in, x_len)) != MITE_OK ||
        (st = mite_check_len("bottleneck out", pr_out, out_len)) != MITE_OK ||
        (st = check_weights(wts, p)) != MITE_OK ||
        (st = mite_check_scratch(mite_bottleneck_int8_scratch_len(p), scratch_len)) != MITE_OK) {
        return st;
    }
    if (pr_out == 0 || e_in == 0) {
        return MITE_OK;
    }
    oh = pr->out_hw[0];
    for (b = 0; b < e->n; b++) {
        const int8_t *x_b = x + b * (e_in / e->n);
        int8_t *out_b = out + b * (pr_out / pr->n);
        block_rows_init(&rows, scratch, p);
        for (oy = 0; oy < oh; oy++) {
            block_output_row(&rows, x_b, oy, wts, p, out_b, oh, oy);
        }
    }
    return MITE_OK;
}

/* Rows of the first block's output kept at once (and rows of one expanded channel): the second
 * depthwise window's vertical extent, at most its input height. */
static size_t link_rows(const mite_bottleneck_chain_int8_params *p) {
    return ring_rows(&p->second);
}

size_t mite_bottleneck_chain_int8_scratch_len(const mite_bottleneck_chain_int8_params *p) {
    const mite_conv2d_geometry *e = &p->second.expand.geometry, *d = &p->second.depthwise.geometry;
    size_t span = link_rows(p), w = e->in_hw[1];
    return mite_bottleneck_int8_scratch_len(&p->first) + e->c_in * span * w + span * w +
           d->c_in * d->out_hw[1];
}

static mite_status check_chain(const mite_bottleneck_chain_int8_params *p) {
    const mite_conv2d_geometry *out = &p->first.project.geometry, *e = &p->second.expand.geometry;
    mite_status st;
    if ((st = check_params(&p->first)) != MITE_OK || (st = check_params(&p->second)) != MITE_OK) {
        return st;
    }
    if (!is_pointwise(e)) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck chain: the second block's first convolution must be "
                         "pointwise",
                         0, 0, 0);
    }
    if (out->n != e->n || out->c_out != e->c_in || out->out_hw[0] != e->in_hw[0] ||
        out->out_hw[1] != e->in_hw[1]) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "bottleneck chain: the first block's output is not the second block's "
                         "input",
                         0, 0, 0);
    }
    if (p->first.project.out.zero_point != p->second.expand.x_zero_point) {
        return mite_fail(MITE_ERR_PARAM,
                         "bottleneck chain: the first block's output zero point is not the second "
                         "block's input zero point",
                         0, 0, 0);
    }
    return MITE_OK;
}

/* The streaming state of a chain over one batch element: the first block's state, the link
 * ring, one expanded channel's rows, the second depthwise row, the next row of the first
 * block's output to compute. */
typedef struct {
    block_rows first;
    int8_t *link;
    int8_t *expanded;
    int8_t *dw_row;
    size_t next_row;
} chain_rows;

/* The state of chain p over scratch (mite_bottleneck_chain_int8_scratch_len elements), before
 * its first row. */
static void chain_rows_init(chain_rows *st, int8_t *scratch,
                            const mite_bottleneck_chain_int8_params *p) {
    const mite_conv2d_geometry *e2 = &p->second.expand.geometry;
    size_t span = link_rows(p);
    block_rows_init(&st->first, scratch, &p->first);
    st->link = scratch + mite_bottleneck_int8_scratch_len(&p->first);
    st->expanded = st->link + e2->c_in * span * e2->in_hw[1];
    st->dw_row = st->expanded + span * e2->in_hw[1];
    st->next_row = 0;
}

/* Output row oy of chain p (all channels) into row slot of out viewed as [c_out, rows, ow]; the
 * rows of the first block's output it reads are computed from x_b first, each once. Rows are
 * taken in increasing order. */
static void chain_output_row(chain_rows *st, const int8_t *x_b, size_t oy,
                             const mite_bottleneck_int8_weights *wts,
                             const mite_bottleneck_chain_int8_params *p, int8_t *out,
                             size_t rows, size_t slot) {
    const mite_bottleneck_int8_params *first = &p->first, *second = &p->second;
    const mite_conv2d_geometry *e2 = &second->expand.geometry, *d2 = &second->depthwise.geometry;
    const mite_conv2d_int8_params *conv = &second->expand;
    size_t span = link_rows(p), c_link = e2->c_in, w_link = e2->in_hw[1];
    size_t ow = d2->out_hw[1], c_mid = d2->c_in, c, ky, ky_lo, ky_hi, x0, len;
    mite_window_axis axes[2];
    mite_conv_axes(d2, axes);
    mite_axis_valid_taps(&axes[0], oy, &ky_lo, &ky_hi);
    if (ky_hi > ky_lo) {
        size_t last_row = mite_axis_input_index(&axes[0], oy, ky_hi - 1);
        while (st->next_row <= last_row) {
            block_output_row(&st->first, x_b, st->next_row, &wts[0], first, st->link, span,
                             st->next_row % span);
            st->next_row++;
        }
    }
    for (c = 0; c < c_mid; c++) {
        int32_t zw = mite_zero_point_of(conv->w_zero_points, conv->w_zero_points_len, c);
        int32_t bias = wts[1].b_expand != NULL ? wts[1].b_expand[c] : 0;
        const int8_t *w_c = wts[1].w_expand + c * c_link;
        for (ky = ky_lo; ky < ky_hi; ky++) {
            size_t row = mite_axis_input_index(&axes[0], oy, ky) % span;
            for (x0 = 0; x0 < w_link; x0 += len) {
                len = w_link - x0 < MITE_BN_RUN ? w_link - x0 : MITE_BN_RUN;
                pointwise_run(st->link + row * w_link + x0, span * w_link, c_link, w_c, zw,
                              conv->x_zero_point, len, st->expanded + row * w_link + x0, conv,
                              bias, c);
            }
        }
        depthwise_channel(st->expanded, span, oy, &axes[0], &axes[1], st->dw_row + c * ow, c,
                          &wts[1], second);
    }
    project_row(st->dw_row, out, rows, slot, &wts[1], second);
}

mite_status mite_bottleneck_chain_int8(const int8_t *x, size_t x_len,
                                       const mite_bottleneck_int8_weights *wts, int8_t *out,
                                       size_t out_len, int8_t *scratch, size_t scratch_len,
                                       const mite_bottleneck_chain_int8_params *p) {
    const mite_bottleneck_int8_params *first = &p->first, *second = &p->second;
    const mite_conv2d_geometry *e1 = &first->expand.geometry, *e2 = &second->expand.geometry,
                               *d2 = &second->depthwise.geometry,
                               *p2 = &second->project.geometry;
    size_t e_in = e1->n * e1->c_in * e1->in_hw[0] * e1->in_hw[1];
    size_t e2_in = e2->n * e2->c_in * e2->in_hw[0] * e2->in_hw[1];
    size_t p_out = p2->n * p2->c_out * p2->out_hw[0] * p2->out_hw[1];
    size_t oh, b, oy;
    chain_rows rows;
    mite_status st;
    if ((st = check_chain(p)) != MITE_OK ||
        (st = mite_check_len("bottleneck chain x", e_in, x_len)) != MITE_OK ||
        (st = mite_check_len("bottleneck chain out", p_out, out_len)) != MITE_OK ||
        (st = check_weights(&wts[0], first)) != MITE_OK ||
        (st = check_weights(&wts[1], second)) != MITE_OK ||
        (st = mite_check_scratch(mite_bottleneck_chain_int8_scratch_len(p), scratch_len)) !=
            MITE_OK) {
        return st;
    }
    if (p_out == 0 || e_in == 0 || e2_in == 0) {
        return MITE_OK;
    }
    oh = d2->out_hw[0];
    for (b = 0; b < e1->n; b++) {
        chain_rows_init(&rows, scratch, p);
        for (oy = 0; oy < oh; oy++) {
            chain_output_row(&rows, x + b * (e_in / e1->n), oy, wts, p,
                             out + b * (p_out / p2->n), oh, oy);
        }
    }
    return MITE_OK;
}

/* Why chain p cannot run in place (mite_bottleneck_chain_int8_in_place), or NULL when it can
 * (Rust `in_place_refusal`). */
static const char *in_place_refusal(const mite_bottleneck_chain_int8_params *p) {
    const mite_conv2d_geometry *e1 = &p->first.expand.geometry, *e2 = &p->second.expand.geometry,
                               *p2 = &p->second.project.geometry;
    size_t plane = e1->in_hw[0] * e1->in_hw[1];
    size_t e_in = e1->n * e1->c_in * plane;
    size_t e2_in = e2->n * e2->c_in * e2->in_hw[0] * e2->in_hw[1];
    size_t p_out = p2->n * p2->c_out * p2->out_hw[0] * p2->out_hw[1];
    if (e1->n != 1) {
        return "bottleneck chain in place: the batch must be one image";
    }
    if (e_in == 0 || e2_in == 0 || p_out == 0) {
        return "bottleneck chain in place: the input, the link or the output is empty";
    }
    if (e1->c_in < 2) {
        return "bottleneck chain in place: the input needs at least two channels (the output "
               "is staged in the second)";
    }
    if (p_out > plane) {
        return "bottleneck chain in place: the output is larger than one input channel";
    }
    return NULL;
}

/* Output rows whose staging bytes (row oy at h * w + oy * row_len of the buffer, in the input's
 * second channel) lie wholly in input rows no later computation reads, once the first block
 * has computed `expanded` rows of its first convolution: the rows below
 * expanded * stride - pad_top (all once every row is computed). Rust `InPlacePlan::flushable`. */
static size_t in_place_flushable(const mite_bottleneck_chain_int8_params *p, size_t expanded,
                                 size_t row_len) {
    const mite_conv2d_geometry *e1 = &p->first.expand.geometry;
    size_t h = e1->in_hw[0], w = e1->in_hw[1], oh = p->second.project.geometry.out_hw[0], dead,
           ready;
    mite_window_axis axes[2];
    mite_conv_axes(e1, axes);
    if (expanded >= axes[0].out_len) {
        dead = h;
    } else {
        dead = expanded * axes[0].stride;
        dead = dead > axes[0].pad_begin ? dead - axes[0].pad_begin : 0;
        dead = dead < h ? dead : h;
    }
    ready = dead * w / row_len;
    return ready < oh ? ready : oh;
}

/* The delay of an admissible chain (Rust `InPlacePlan::new`): the most output rows pending at
 * once, from a simulation of the kernel's schedule (the first block's output rows the second
 * depthwise window reads before each output row, and the first-convolution rows those read). */
static size_t in_place_delay(const mite_bottleneck_chain_int8_params *p) {
    const mite_conv2d_geometry *d2 = &p->second.depthwise.geometry;
    size_t row_len = p->second.project.geometry.c_out * d2->out_hw[1];
    size_t oh = d2->out_hw[0], oy, lo, hi, lo1, hi1, links = 0, expanded = 0, flushed = 0,
           delay = 0, ready;
    mite_window_axis ay1[2], ay2[2];
    mite_conv_axes(&p->first.depthwise.geometry, ay1);
    mite_conv_axes(d2, ay2);
    for (oy = 0; oy < oh; oy++) {
        mite_axis_valid_taps(&ay2[0], oy, &lo, &hi);
        if (hi > lo) {
            size_t last = mite_axis_input_index(&ay2[0], oy, hi - 1);
            for (; links <= last; links++) {
                mite_axis_valid_taps(&ay1[0], links, &lo1, &hi1);
                if (hi1 > lo1) {
                    size_t need = mite_axis_input_index(&ay1[0], links, hi1 - 1) + 1;
                    expanded = need > expanded ? need : expanded;
                }
            }
        }
        delay = oy + 1 - flushed > delay ? oy + 1 - flushed : delay;
        ready = in_place_flushable(p, expanded, row_len);
        ready = ready < oy + 1 ? ready : oy + 1;
        flushed = ready > flushed ? ready : flushed;
    }
    return delay;
}

size_t mite_bottleneck_chain_int8_in_place_scratch_len(
    const mite_bottleneck_chain_int8_params *p) {
    const mite_conv2d_geometry *p2 = &p->second.project.geometry;
    if (in_place_refusal(p) != NULL) {
        return 0;
    }
    return mite_bottleneck_chain_int8_scratch_len(p) +
           in_place_delay(p) * p2->c_out * p2->out_hw[1];
}

/* Copies the pending rows [*flushed, ready) from the delay ring to the staging area. */
static void in_place_flush(int8_t *staging, const int8_t *ring, size_t delay, size_t row_len,
                           size_t *flushed, size_t ready) {
    size_t r;
    for (r = *flushed; r < ready; r++) {
        memcpy(staging + r * row_len, ring + (r % delay) * row_len, row_len);
    }
    *flushed = ready > *flushed ? ready : *flushed;
}

mite_status mite_bottleneck_chain_int8_in_place(int8_t *buf, size_t buf_len,
                                                const mite_bottleneck_int8_weights *wts,
                                                int8_t *scratch, size_t scratch_len,
                                                const mite_bottleneck_chain_int8_params *p) {
    const mite_conv2d_geometry *e1 = &p->first.expand.geometry,
                               *p2 = &p->second.project.geometry;
    const char *refusal;
    size_t plane = e1->in_hw[0] * e1->in_hw[1];
    size_t oh = p2->out_hw[0], ow = p2->out_hw[1], c_out = p2->c_out, row_len = c_out * ow;
    size_t delay, chain, oy, c, flushed = 0, ready;
    int8_t *ring, *staging = buf + plane;
    chain_rows rows;
    mite_status st;
    if ((st = check_chain(p)) != MITE_OK) {
        return st;
    }
    if ((refusal = in_place_refusal(p)) != NULL) {
        return mite_fail(MITE_ERR_GEOMETRY, refusal, 0, 0, 0);
    }
    delay = in_place_delay(p);
    chain = mite_bottleneck_chain_int8_scratch_len(p);
    if ((st = mite_check_len("bottleneck chain in place buf", e1->c_in * plane, buf_len)) !=
            MITE_OK ||
        (st = check_weights(&wts[0], &p->first)) != MITE_OK ||
        (st = check_weights(&wts[1], &p->second)) != MITE_OK ||
        (st = mite_check_scratch(chain + delay * row_len, scratch_len)) != MITE_OK) {
        return st;
    }
    ring = scratch + chain;
    chain_rows_init(&rows, scratch, p);
    for (oy = 0; oy < oh; oy++) {
        chain_output_row(&rows, buf, oy, wts, p, ring + (oy % delay) * row_len, 1, 0);
        ready = in_place_flushable(p, rows.first.next_row, row_len);
        in_place_flush(staging, ring, delay, row_len, &flushed, ready < oy + 1 ? ready : oy + 1);
    }
    in_place_flush(staging, ring, delay, row_len, &flushed, oh);
    /* the staged rows [oy][c][x] to [c][oy][x] at the front (disjoint: out_len <= plane) */
    for (oy = 0; oy < oh; oy++) {
        for (c = 0; c < c_out; c++) {
            memcpy(buf + (c * oh + oy) * ow, staging + oy * row_len + c * ow, ow);
        }
    }
    return MITE_OK;
}
