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

static float weight_at(const int8_t *w, const mite_per_axis *wp, size_t i) {
    float s;
    int8_t z;
    mite_per_axis_of(wp, i, &s, &z);
    return (float)((int16_t)w[i] - (int16_t)z) * s;
}

/* dx of one plane (channel c) into scratch from dy's plane, then over it. */
static void depthwise_plane(float *dyp, float *scratch, size_t plane, size_t c, size_t taps,
                            const int8_t *w, const mite_per_axis *wp,
                            const mite_window_axis axes[2]) {
    size_t w_in = axes[1].in_len, ow = axes[1].out_len, sw = axes[1].stride, ox, ix, i;
    mite_tap_rows it;
    for (i = 0; i < plane; i++) {
        scratch[i] = 0.0f;
    }
    mite_tap_rows_init(&it, axes);
    while (mite_tap_rows_next(&it)) {
        float wv = weight_at(w, wp, c * taps + it.row_tap);
        const float *dy_row = dyp + it.row_oy * ow;
        float *dx_row = scratch + it.row_iy * w_in;
        for (ox = it.row_ox_lo, ix = it.row_ix0; ox < it.row_ox_hi; ox++, ix += sw) {
            dx_row[ix] += wv * dy_row[ox];
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
    int kind = in_place_kind(g);
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
        if (in_plane == 0) {
            return MITE_OK;
        }
        mite_conv_axes(g, axes);
        for (i = 0; i < g->n * g->c_in; i++) {
            depthwise_plane(buf + i * in_plane, scratch, in_plane, i % g->c_in, taps, w, wp, axes);
        }
        return MITE_OK;
    }
    for (b = 0; b < g->n; b++) {
        for (px = 0; px < in_plane; px++) {
            for (oc = 0; oc < g->c_out; oc++) {
                scratch[oc] = buf[(b * g->c_out + oc) * in_plane + px];
            }
            for (ic = 0; ic < g->c_in; ic++) {
                float acc = 0.0f;
                for (oc = 0; oc < g->c_out; oc++) {
                    acc += weight_at(w, wp, oc * g->c_in + ic) * scratch[oc];
                }
                buf[(b * g->c_in + ic) * in_plane + px] = acc;
            }
        }
    }
    return MITE_OK;
}
