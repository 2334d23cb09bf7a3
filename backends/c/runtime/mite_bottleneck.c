/*
 * mite_bottleneck.c - the streamed frozen inverted bottleneck (Rust
 * `mite_kernels::int8::bottleneck_int8`): a dense first convolution (a pointwise expansion, or
 * any window such as a 3x3 stride-2 stem), a depthwise convolution and a pointwise projection
 * computed row by row through a ring of rows of the first convolution's output, in the same
 * loop order and with the same arithmetic as the Rust kernel (bit-exact).
 */
#include "mite_internal.h"

static int32_t stage_bias_add(mite_bias_add mode, int32_t acc, int32_t bias) {
    return mode == MITE_BIAS_WRAPPING ? mite_wadd(acc, bias) : mite_sadd(acc, bias);
}

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

/* Row my of the first convolution's output (all channels) into ring slot my % rows, from the
 * whole input x of one batch element. */
static void expand_row(const int8_t *x, size_t my, int8_t *ring, size_t rows,
                       const mite_bottleneck_int8_weights *wts,
                       const mite_bottleneck_int8_params *p) {
    const mite_conv2d_int8_params *conv = &p->expand;
    const mite_conv2d_geometry *g = &conv->geometry;
    size_t w = g->in_hw[1], plane = g->in_hw[0] * g->in_hw[1];
    size_t kw = g->window.kernel[1], taps = g->window.kernel[0] * kw, mw = g->out_hw[1];
    int32_t zx = conv->x_zero_point;
    size_t slot = my % rows, c, mx, ci, ky, kx, ky_lo, ky_hi, kx_lo, kx_hi;
    mite_window_axis axes[2];
    mite_conv_axes(g, axes);
    mite_axis_valid_taps(&axes[0], my, &ky_lo, &ky_hi);
    for (c = 0; c < g->c_out; c++) {
        int32_t zw = mite_zero_point_of(conv->w_zero_points, conv->w_zero_points_len, c);
        const int8_t *w_c = wts->w_expand + c * g->c_in * taps;
        int32_t bias = wts->b_expand != NULL ? wts->b_expand[c] : 0;
        int8_t *row = ring + (c * rows + slot) * mw;
        for (mx = 0; mx < mw; mx++) {
            int32_t acc = 0;
            mite_axis_valid_taps(&axes[1], mx, &kx_lo, &kx_hi);
            for (ci = 0; ci < g->c_in; ci++) {
                const int8_t *xp = x + ci * plane;
                const int8_t *wk = w_c + ci * taps;
                for (ky = ky_lo; ky < ky_hi; ky++) {
                    const int8_t *x_row = xp + mite_axis_input_index(&axes[0], my, ky) * w;
                    for (kx = kx_lo; kx < kx_hi; kx++) {
                        int32_t xv = x_row[mite_axis_input_index(&axes[1], mx, kx)];
                        int32_t wv = wk[ky * kw + kx];
                        acc = mite_wadd(acc, mite_wmul(xv - zx, wv - zw));
                    }
                }
            }
            row[mx] = mite_output_stage_finish(&conv->out,
                                               stage_bias_add(conv->bias_add, acc, bias), c);
        }
    }
}

/* Depthwise output row oy (all channels) from the expanded rows in the ring. */
static void depthwise_row(const int8_t *ring, size_t rows, size_t oy, const mite_window_axis *ay,
                          const mite_window_axis *ax, int8_t *dw_row,
                          const mite_bottleneck_int8_weights *wts,
                          const mite_bottleneck_int8_params *p) {
    const mite_conv2d_int8_params *conv = &p->depthwise;
    const mite_conv2d_geometry *g = &conv->geometry;
    size_t w = ax->in_len, ow = ax->out_len;
    size_t kh = g->window.kernel[0], kw = g->window.kernel[1];
    int32_t zx = conv->x_zero_point;
    size_t c, ox, ky, kx, ky_lo, ky_hi, kx_lo, kx_hi;
    mite_axis_valid_taps(ay, oy, &ky_lo, &ky_hi);
    for (c = 0; c < g->c_out; c++) {
        int32_t zw = mite_zero_point_of(conv->w_zero_points, conv->w_zero_points_len, c);
        const int8_t *wk = wts->w_depthwise + c * kh * kw;
        int32_t bias = wts->b_depthwise != NULL ? wts->b_depthwise[c] : 0;
        for (ox = 0; ox < ow; ox++) {
            int32_t acc = 0;
            mite_axis_valid_taps(ax, ox, &kx_lo, &kx_hi);
            for (ky = ky_lo; ky < ky_hi; ky++) {
                size_t slot = mite_axis_input_index(ay, oy, ky) % rows;
                const int8_t *row = ring + (c * rows + slot) * w;
                for (kx = kx_lo; kx < kx_hi; kx++) {
                    int32_t xv = row[mite_axis_input_index(ax, ox, kx)];
                    int32_t wv = wk[ky * kw + kx];
                    acc = mite_wadd(acc, mite_wmul(xv - zx, wv - zw));
                }
            }
            dw_row[c * ow + ox] = mite_output_stage_finish(
                &conv->out, stage_bias_add(conv->bias_add, acc, bias), c);
        }
    }
}

/* Output row oy of every projection channel from one depthwise output row. */
static void project_row(const int8_t *dw_row, size_t oy, int8_t *out,
                        const mite_bottleneck_int8_weights *wts,
                        const mite_bottleneck_int8_params *p) {
    const mite_conv2d_int8_params *conv = &p->project;
    const mite_conv2d_geometry *g = &conv->geometry;
    size_t oh = g->in_hw[0], ow = g->in_hw[1];
    int32_t zx = conv->x_zero_point;
    size_t o, ox, c;
    for (o = 0; o < g->c_out; o++) {
        int32_t zw = mite_zero_point_of(conv->w_zero_points, conv->w_zero_points_len, o);
        const int8_t *w_o = wts->w_project + o * g->c_in;
        int32_t bias = wts->b_project != NULL ? wts->b_project[o] : 0;
        int8_t *row = out + (o * oh + oy) * ow;
        for (ox = 0; ox < ow; ox++) {
            int32_t acc = 0;
            for (c = 0; c < g->c_in; c++) {
                int32_t xv = dw_row[c * ow + ox];
                acc = mite_wadd(acc, mite_wmul(xv - zx, (int32_t)w_o[c] - zw));
            }
            row[ox] = mite_output_stage_finish(&conv->out,
                                               stage_bias_add(conv->bias_add, acc, bias), o);
        }
    }
}

mite_status mite_bottleneck_int8(const int8_t *x, size_t x_len,
                                 const mite_bottleneck_int8_weights *wts, int8_t *out,
                                 size_t out_len, int8_t *scratch, size_t scratch_len,
                                 const mite_bottleneck_int8_params *p) {
    const mite_conv2d_geometry *e = &p->expand.geometry, *d = &p->depthwise.geometry,
                               *pr = &p->project.geometry;
    size_t e_in = e->n * e->c_in * e->in_hw[0] * e->in_hw[1];
    size_t pr_out = pr->n * pr->c_out * pr->out_hw[0] * pr->out_hw[1];
    size_t needed, rows, x_plane, mw, oh, ow, c_mid, b, oy, next_row;
    mite_window_axis axes[2];
    int8_t *ring, *dw_row;
    mite_status st;
    if ((st = check_params(p)) != MITE_OK ||
        (st = mite_check_len("bottleneck x", e_in, x_len)) != MITE_OK ||
        (st = mite_check_len("bottleneck out", pr_out, out_len)) != MITE_OK ||
        (st = mite_check_len("expansion",
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
    needed = mite_bottleneck_int8_scratch_len(p);
    if ((st = mite_check_scratch(needed, scratch_len)) != MITE_OK) {
        return st;
    }
    if (pr_out == 0 || e_in == 0) {
        return MITE_OK;
    }
    rows = ring_rows(p);
    x_plane = e->in_hw[0] * e->in_hw[1];
    mw = d->in_hw[1];
    oh = d->out_hw[0];
    ow = d->out_hw[1];
    c_mid = d->c_in;
    ring = scratch;
    dw_row = scratch + c_mid * rows * mw;
    mite_conv_axes(d, axes);
    for (b = 0; b < e->n; b++) {
        const int8_t *x_b = x + b * e->c_in * x_plane;
        int8_t *out_b = out + b * pr->c_out * oh * ow;
        next_row = 0;
        for (oy = 0; oy < oh; oy++) {
            size_t lo, hi;
            mite_axis_valid_taps(&axes[0], oy, &lo, &hi);
            if (hi > lo) {
                size_t last_row = mite_axis_input_index(&axes[0], oy, hi - 1);
                while (next_row <= last_row) {
                    expand_row(x_b, next_row, ring, rows, wts, p);
                    next_row++;
                }
            }
            depthwise_row(ring, rows, oy, &axes[0], &axes[1], dw_row, wts, p);
            project_row(dw_row, oy, out_b, wts, p);
        }
    }
    return MITE_OK;
}
