/*
 * mite_inplace.c - the input gradient of a convolution with an int8 weight written over its
 * operand dy (Rust `float::inplace`): depthwise with equal planes (a one-plane scratch) or
 * pointwise with c_in <= c_out (a c_out scratch). Same sums in the same order as
 * mite_conv2d_backward_input_int8w, so bit-exact; compile with -ffp-contract=off.
 */
#include "mite_internal.h"

#include <string.h>

/* 0: not in place, 1: depthwise, 2: pointwise (Rust `InPlaceConv::of`). */
static int in_place_kind(const mite_conv2d_geometry *g) {
    const mite_window2d *w = &g->window;
    int depthwise = g->c_in == g->groups && g->c_out == g->groups;
    int pointwise = g->groups == 1 && w->kernel[0] == 1 && w->kernel[1] == 1 &&
                    w->strides[0] == 1 && w->strides[1] == 1 && w->pads[0] == 0 &&
                    w->pads[1] == 0 && w->pads[2] == 0 && w->pads[3] == 0;
    if (depthwise && g->in_hw[0] == g->out_hw[0] && g->in_hw[1] == g->out_hw[1]) {
        return 1;
    }
    if (pointwise && g->c_in <= g->c_out) {
        return 2;
    }
    return 0;
}

/* dx of one plane (channel c) into scratch from dy's plane, then over it: taps row-major, each
 * tap's rows ascending (the order of mite_tap_rows), the tap weights dequantized once. */
static void depthwise_plane(float *dyp, float *restrict scratch, size_t plane, size_t c,
                            size_t taps, const int8_t *w, const mite_per_axis *wp,
                            const mite_window_axis axes[2], const mite_tap_span *spans) {
    size_t w_in = axes[1].in_len, ow = axes[1].out_len, sw = axes[1].stride;
    size_t sy = axes[0].stride, t, r, i;
    float wt[MITE_TAP_TABLE];
    int run = taps <= MITE_TAP_TABLE;
    for (i = 0; i < plane; i++) {
        scratch[i] = 0.0f;
    }
    if (run) {
        mite_dequant_run(wp, w, c * taps, taps, wt); /* the channel's taps */
    }
    for (t = 0; t < taps; t++) {
        mite_tap_span tmp;
        const mite_tap_span *sp = spans;
        size_t n, rows;
        float wv = run ? wt[t] : mite_dequant_at(wp, w, c * taps + t);
        if (spans != NULL) {
            sp = &spans[t];
        } else {
            mite_tap_span_of(axes, t, &tmp);
            sp = &tmp;
        }
        n = sp->ox_hi - sp->ox_lo;
        rows = sp->oy_hi - sp->oy_lo;
        for (r = 0; r < rows; r++) {
            const float *dy_row = dyp + (sp->oy_lo + r) * ow + sp->ox_lo;
            float *dx_row = scratch + (sp->iy0 + r * sy) * w_in + sp->ix0;
            if (sw == 1) {
                mite_axpy_f32(dx_row, dy_row, wv, n);
            } else {
                for (i = 0; i < n; i++) {
                    dx_row[i * sw] += wv * dy_row[i];
                }
            }
        }
    }
    memcpy(dyp, scratch, plane * sizeof(float));
}

mite_status mite_conv2d_backward_input_int8w_inplace(float *buf, size_t buf_len,
                                                     const int8_t *w, size_t w_len,
                                                     const mite_per_axis *wp, float *scratch,
                                                     size_t scratch_len,
                                                     const mite_conv2d_geometry *g) {
    size_t in_plane = g->in_hw[0] * g->in_hw[1], out_plane = g->out_hw[0] * g->out_hw[1];
    size_t taps = g->window.kernel[0] * g->window.kernel[1];
    size_t output_len = g->n * g->c_out * out_plane;
    size_t weight_len = g->c_out * (g->c_in / g->groups) * taps;
    size_t needed, b, px, oc, ic, i;
    int kind = in_place_kind(g), per_oc;
    mite_status st;
    if (kind == 0) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "in-place conv2d input gradient needs a depthwise conv with equal planes "
                         "or a pointwise conv with c_in <= c_out",
                         0, 0, 0);
    }
    if ((st = mite_check_len("conv2d grad_output", output_len, buf_len)) != MITE_OK ||
        (st = mite_check_len("conv2d weight", weight_len, w_len)) != MITE_OK) {
        return st;
    }
    needed = kind == 1 ? in_plane : g->c_out;
    if ((st = mite_check_scratch(needed, scratch_len)) != MITE_OK) {
        return st;
    }
    if (kind == 1) {
        mite_window_axis axes[2];
        mite_tap_span spans[MITE_TAP_TABLE];
        int tabled;
        if (in_plane == 0) {
            return MITE_OK;
        }
        mite_conv_axes(g, axes);
        tabled = mite_tap_spans(axes, spans);
        for (i = 0; i < g->n * g->c_in; i++) {
            depthwise_plane(buf + i * in_plane, scratch, in_plane, i % g->c_in, taps, w, wp, axes,
                            tabled ? spans : NULL);
        }
        return MITE_OK;
    }
    /* One scale per output channel (the weight's axis 0): element oc * c_in + ic has channel oc. */
    per_oc = wp->scales_len == g->c_out && wp->inner == g->c_in;
    for (b = 0; b < g->n; b++) {
        for (px = 0; px < in_plane; px++) {
            for (oc = 0; oc < g->c_out; oc++) {
                scratch[oc] = buf[(b * g->c_out + oc) * in_plane + px];
            }
            ic = 0;
            if (per_oc) {
                /* four input channels at a time: four independent sums, each over the output
                 * channels ascending as below */
                for (; ic + 4 <= g->c_in; ic += 4) {
                    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                    size_t k;
                    for (oc = 0; oc < g->c_out; oc++) {
                        const int8_t *wr = w + oc * g->c_in + ic;
                        int16_t z = (int16_t)(oc < wp->zero_points_len ? wp->zero_points[oc] : 0);
                        float s = wp->scales[oc], d = scratch[oc];
                        for (k = 0; k < 4; k++) {
                            acc[k] += (float)((int16_t)wr[k] - z) * s * d;
                        }
                    }
                    for (k = 0; k < 4; k++) {
                        buf[(b * g->c_in + ic + k) * in_plane + px] = acc[k];
                    }
                }
            }
            for (; ic < g->c_in; ic++) {
                float acc = 0.0f;
                if (per_oc) {
                    for (oc = 0; oc < g->c_out; oc++) {
                        float wv = (float)((int16_t)w[oc * g->c_in + ic] -
                                           (int16_t)(oc < wp->zero_points_len ? wp->zero_points[oc]
                                                                               : 0)) *
                                   wp->scales[oc];
                        acc += wv * scratch[oc];
                    }
                } else {
                    for (oc = 0; oc < g->c_out; oc++) {
                        acc += mite_dequant_at(wp, w, oc * g->c_in + ic) * scratch[oc];
                    }
                }
                buf[(b * g->c_in + ic) * in_plane + px] = acc;
            }
        }
    }
    return MITE_OK;
}
