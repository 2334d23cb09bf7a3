/*
 * mite_split.c - convolutions whose int8 weight is stored in two parts along its input
 * channels (Rust `mite_kernels::split`): the trained slice [c_out, kept, kh, kw] (SRAM) and the
 * frozen remainder [c_out, c_in - kept, kh, kw] (flash). Both are bit-exact with the unsplit
 * kernels on the joined weight: the forward gathers the rows of up to MITE_SPLIT_GROUP output
 * channels and runs mite_conv2d_int8 on them; the input gradient runs
 * mite_conv2d_backward_input_int8w once per part, each writing its own input channels.
 */
#include "mite_internal.h"

/* Rust `split::SplitWeight::check`: dense, kept <= c_in, both parts of the right length; sets
 * the per-output-channel lengths of the parts (zero when the check fails, so they are written
 * on every path). */
static mite_status split_check(const mite_split_weight *w, const mite_conv2d_geometry *g,
                               size_t *row_t, size_t *row_f) {
    size_t taps = g->window.kernel[0] * g->window.kernel[1];
    mite_status st;
    *row_t = 0;
    *row_f = 0;
    if (g->groups != 1) {
        return mite_fail(MITE_ERR_PARAM, "a split weight needs a dense convolution (groups 1)",
                         0, 0, 0);
    }
    if (w->kept > g->c_in) {
        return mite_fail(MITE_ERR_PARAM,
                         "a split weight keeps more input channels than the convolution has", 0,
                         0, 0);
    }
    *row_t = w->kept * taps;
    *row_f = (g->c_in - w->kept) * taps;
    if ((st = mite_check_len("split weight (trained part)", g->c_out * *row_t, w->trained_len)) !=
            MITE_OK ||
        (st = mite_check_len("split weight (frozen part)", g->c_out * *row_f, w->frozen_len)) !=
            MITE_OK) {
        return st;
    }
    return MITE_OK;
}

size_t mite_conv2d_int8_split_gather_len(const mite_conv2d_geometry *g) {
    size_t group = g->c_out < MITE_SPLIT_GROUP ? g->c_out : MITE_SPLIT_GROUP;
    return group * (g->c_in / g->groups) * g->window.kernel[0] * g->window.kernel[1];
}

mite_status mite_conv2d_int8_split(const int8_t *x, size_t x_len, const mite_split_weight *w,
                                   const int32_t *bias, size_t bias_len, int8_t *out,
                                   size_t out_len, int32_t *scratch, size_t scratch_len,
                                   int8_t *gather, size_t gather_len,
                                   const mite_conv2d_int8_params *p) {
    const mite_conv2d_geometry *g = &p->geometry;
    size_t plane = g->out_hw[0] * g->out_hw[1];
    size_t in_len = g->c_in * g->in_hw[0] * g->in_hw[1], per_n = g->c_out * plane;
    size_t row_t, row_f, row, o0, k, b;
    mite_status st;
    if ((st = split_check(w, g, &row_t, &row_f)) != MITE_OK ||
        (st = mite_check_len("conv2d x", g->n * in_len, x_len)) != MITE_OK ||
        (st = mite_check_len("conv2d out", g->n * per_n, out_len)) != MITE_OK) {
        return st;
    }
    if (bias != NULL && (st = mite_check_len("conv2d bias", g->c_out, bias_len)) != MITE_OK) {
        return st;
    }
    if ((st = mite_output_stage_check(&p->out, g->c_out)) != MITE_OK ||
        (st = mite_check_scratch(plane, scratch_len)) != MITE_OK ||
        (st = mite_check_scratch(mite_conv2d_int8_split_gather_len(g), gather_len)) != MITE_OK) {
        return st;
    }
    row = row_t + row_f;
    if (g->n * per_n == 0) {
        return MITE_OK;
    }
    for (o0 = 0; o0 < g->c_out; o0 += MITE_SPLIT_GROUP) {
        size_t count = g->c_out - o0 < MITE_SPLIT_GROUP ? g->c_out - o0 : MITE_SPLIT_GROUP;
        mite_conv2d_int8_params sub = *p;
        for (k = 0; k < count; k++) {
            size_t o = o0 + k, i;
            for (i = 0; i < row_t; i++) {
                gather[k * row + i] = w->trained[o * row_t + i];
            }
            for (i = 0; i < row_f; i++) {
                gather[k * row + row_t + i] = w->frozen[o * row_f + i];
            }
        }
        sub.geometry.n = 1;
        sub.geometry.c_out = count;
        if (p->out.requant.channels > 1) {
            sub.out.requant.channels = count;
            sub.out.requant.scales = p->out.requant.scales + o0;
            sub.out.requant.multipliers = p->out.requant.multipliers + o0;
            sub.out.requant.shifts = p->out.requant.shifts + o0;
        }
        if (p->w_zero_points_len > 1) {
            sub.w_zero_points = p->w_zero_points + o0;
            sub.w_zero_points_len = count;
        }
        for (b = 0; b < g->n; b++) {
            st = mite_conv2d_int8(x + b * in_len, in_len, gather, count * row,
                                  bias != NULL ? bias + o0 : NULL, bias != NULL ? count : 0,
                                  out + b * per_n + o0 * plane, count * plane, scratch, plane,
                                  &sub);
            if (st != MITE_OK) {
                return st;
            }
        }
    }
    return MITE_OK;
}

mite_status mite_conv2d_backward_input_int8w_split(const float *dy, size_t dy_len,
                                                   const mite_split_weight *w,
                                                   const mite_per_axis *wp, float *out,
                                                   size_t out_len,
                                                   const mite_conv2d_geometry *g) {
    size_t in_plane = g->in_hw[0] * g->in_hw[1];
    size_t per_n = g->c_out * g->out_hw[0] * g->out_hw[1];
    size_t row_t, row_f, b, part;
    mite_status st;
    if ((st = split_check(w, g, &row_t, &row_f)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_output", g->n * per_n, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_input", g->n * g->c_in * in_plane, out_len)) !=
            MITE_OK) {
        return st;
    }
    if (wp->scales_len != 1 && wp->scales_len != g->c_out) {
        return mite_fail(MITE_ERR_PARAM,
                         "a split weight is quantized per tensor or per output channel", 0, 0, 0);
    }
    for (b = 0; b < g->n; b++) {
        for (part = 0; part < 2; part++) {
            size_t first = part == 0 ? 0 : w->kept;
            size_t channels = part == 0 ? w->kept : g->c_in - w->kept;
            size_t row = part == 0 ? row_t : row_f;
            const int8_t *weight = part == 0 ? w->trained : w->frozen;
            mite_conv2d_geometry sub = *g;
            mite_per_axis pa = *wp;
            if (channels == 0) {
                continue;
            }
            sub.n = 1;
            sub.c_in = channels;
            pa.inner = row > 0 ? row : 1;
            st = mite_conv2d_backward_input_int8w(
                dy + b * per_n, per_n, weight, g->c_out * row, &pa,
                out + (b * g->c_in + first) * in_plane, channels * in_plane, &sub);
            if (st != MITE_OK) {
                return st;
            }
        }
    }
    return MITE_OK;
}
