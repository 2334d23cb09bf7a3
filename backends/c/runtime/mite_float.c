/*
 * mite_float.c - f32 kernels of the backward pass (mirrors mite-kernels' float module):
 * convolution and its input / weight / weight-slice / bias gradients, linear and its gradients,
 * pooling gradients, packed bit masks, softmax cross-entropy. Sums accumulate in f32 in the same
 * order as the Rust kernels; compile with -ffp-contract=off.
 */
#include "mite_internal.h"

#include <math.h>

static void fill_f32(float *p, size_t len, float v) {
    size_t i;
    for (i = 0; i < len; i++) {
        p[i] = v;
    }
}

/* The validated sizes of a convolution geometry. */
typedef struct {
    size_t in_plane, out_plane, input_len, output_len, weight_len, cin_g, cout_g, taps;
} conv_sizes;

static conv_sizes sizes_of(const mite_conv2d_geometry *g) {
    conv_sizes s;
    s.in_plane = g->in_hw[0] * g->in_hw[1];
    s.out_plane = g->out_hw[0] * g->out_hw[1];
    s.input_len = g->n * g->c_in * s.in_plane;
    s.output_len = g->n * g->c_out * s.out_plane;
    s.cin_g = g->c_in / g->groups;
    s.cout_g = g->c_out / g->groups;
    s.taps = g->window.kernel[0] * g->window.kernel[1];
    s.weight_len = g->c_out * s.cin_g * s.taps;
    return s;
}

/* Walks (batch, group, output channel, input channel) as Rust's for_each_channel_pair. */
typedef struct {
    size_t b, oc, ic, w_base;
} channel_pair;

typedef void (*pair_fn)(const channel_pair *pair, void *ctx);

static void for_each_channel_pair(const mite_conv2d_geometry *g, pair_fn f, void *ctx) {
    conv_sizes s = sizes_of(g);
    size_t b, grp, oc, icg;
    channel_pair pair;
    if (s.input_len == 0 || s.output_len == 0) {
        return;
    }
    for (b = 0; b < g->n; b++) {
        for (grp = 0; grp < g->groups; grp++) {
            for (oc = grp * s.cout_g; oc < (grp + 1) * s.cout_g; oc++) {
                for (icg = 0; icg < s.cin_g; icg++) {
                    pair.b = b;
                    pair.oc = oc;
                    pair.ic = grp * s.cin_g + icg;
                    pair.w_base = (oc * s.cin_g + icg) * s.taps;
                    f(&pair, ctx);
                }
            }
        }
    }
}

typedef struct {
    const mite_conv2d_geometry *g;
    conv_sizes s;
    mite_window_axis axes[2];
    const float *a; /* x (forward, weight grad) or dy (input grad) */
    const float *b; /* w (forward, input grad) or dy (weight grad) */
    float *out;
    const int8_t *wq;          /* int8 weight (input grad with an int8 weight) */
    const mite_per_axis *wpa; /* its quantization */
} conv_ctx;

static void conv_forward_pair(const channel_pair *pair, void *vctx) {
    conv_ctx *c = (conv_ctx *)vctx;
    const float *xp = c->a + (pair->b * c->g->c_in + pair->ic) * c->s.in_plane;
    float *y = c->out + (pair->b * c->g->c_out + pair->oc) * c->s.out_plane;
    const float *wk = c->b + pair->w_base;
    size_t w_in = c->axes[1].in_len, ow = c->axes[1].out_len, sw = c->axes[1].stride, ox, ix;
    mite_tap_rows it;
    mite_tap_rows_init(&it, c->axes);
    while (mite_tap_rows_next(&it)) {
        float wv = wk[it.row_tap];
        float *y_row = y + it.row_oy * ow;
        const float *x_row = xp + it.row_iy * w_in;
        for (ox = it.row_ox_lo, ix = it.row_ix0; ox < it.row_ox_hi; ox++, ix += sw) {
            y_row[ox] += wv * x_row[ix];
        }
    }
}

mite_status mite_conv2d_f32(const float *x, size_t x_len, const float *w, size_t w_len,
                            const float *bias, size_t bias_len, float *out, size_t out_len,
                            const mite_conv2d_geometry *g) {
    conv_ctx c;
    size_t pl;
    mite_status st;
    c.s = sizes_of(g);
    if ((st = mite_check_len("conv2d input", c.s.input_len, x_len)) != MITE_OK ||
        (st = mite_check_len("conv2d weight", c.s.weight_len, w_len)) != MITE_OK ||
        (st = mite_check_len("conv2d output", c.s.output_len, out_len)) != MITE_OK) {
        return st;
    }
    if (bias != NULL && (st = mite_check_len("conv2d bias", g->c_out, bias_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (c.s.out_plane == 0) {
        return MITE_OK;
    }
    if (bias != NULL && g->c_out > 0) {
        for (pl = 0; pl < out_len / c.s.out_plane; pl++) {
            fill_f32(out + pl * c.s.out_plane, c.s.out_plane, bias[pl % g->c_out]);
        }
    }
    c.g = g;
    mite_conv_axes(g, c.axes);
    c.a = x;
    c.b = w;
    c.out = out;
    for_each_channel_pair(g, conv_forward_pair, &c);
    return MITE_OK;
}

/* dx += wv * dy over the rows of tap (ki, kj) that read real input, rows ascending: the order of
 * mite_tap_rows within one tap, without the iterator (a pointwise window is one plane loop). */
static void input_grad_tap(float *dx, const float *dyp, float wv, const mite_window_axis axes[2],
                           size_t ki, size_t kj) {
    size_t w_in = axes[1].in_len, ow = axes[1].out_len, sw = axes[1].stride;
    size_t oy, oy_lo, oy_hi, ox, ox_lo, ox_hi, ix, ix0;
    mite_axis_valid_outputs(&axes[0], ki, &oy_lo, &oy_hi);
    mite_axis_valid_outputs(&axes[1], kj, &ox_lo, &ox_hi);
    if (ox_lo >= ox_hi || oy_lo >= oy_hi) {
        return;
    }
    ix0 = mite_axis_input_index(&axes[1], ox_lo, kj);
    if (axes[0].kernel == 1 && axes[1].kernel == 1 && axes[0].stride == 1 && sw == 1 &&
        axes[0].pad_begin == 0 && axes[1].pad_begin == 0 && ox_lo == 0 && ox_hi == w_in &&
        oy_lo == 0 && ow == w_in) {
        size_t i, len = oy_hi * ow; /* rows oy_lo.. are the planes' first rows, contiguous */
        for (i = 0; i < len; i++) {
            dx[i] += wv * dyp[i];
        }
        return;
    }
    for (oy = oy_lo; oy < oy_hi; oy++) {
        const float *dy_row = dyp + oy * ow;
        float *dx_row = dx + mite_axis_input_index(&axes[0], oy, ki) * w_in;
        for (ox = ox_lo, ix = ix0; ox < ox_hi; ox++, ix += sw) {
            dx_row[ix] += wv * dy_row[ox];
        }
    }
}

static void conv_input_pair(const channel_pair *pair, void *vctx) {
    conv_ctx *c = (conv_ctx *)vctx;
    const float *dyp = c->a + (pair->b * c->g->c_out + pair->oc) * c->s.out_plane;
    float *dx = c->out + (pair->b * c->g->c_in + pair->ic) * c->s.in_plane;
    const float *wk = c->b + pair->w_base;
    size_t ki, kj, kw = c->axes[1].kernel;
    for (ki = 0; ki < c->axes[0].kernel; ki++) {
        for (kj = 0; kj < kw; kj++) {
            input_grad_tap(dx, dyp, wk[ki * kw + kj], c->axes, ki, kj);
        }
    }
}

mite_status mite_conv2d_backward_input_f32(const float *dy, size_t dy_len, const float *w,
                                           size_t w_len, float *out, size_t out_len,
                                           const mite_conv2d_geometry *g) {
    conv_ctx c;
    mite_status st;
    c.s = sizes_of(g);
    if ((st = mite_check_len("conv2d grad_output", c.s.output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d weight", c.s.weight_len, w_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_input", c.s.input_len, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (c.s.out_plane == 0 || c.s.in_plane == 0) {
        return MITE_OK;
    }
    c.g = g;
    mite_conv_axes(g, c.axes);
    c.a = dy;
    c.b = w;
    c.out = out;
    for_each_channel_pair(g, conv_input_pair, &c);
    return MITE_OK;
}

/* conv_input_pair with the int8 weight dequantized tap by tap: f32(q - z) * s of its channel,
 * the same value mite_dequantize computes (Rust `conv2d_backward_input_int8`). */
static void conv_input_pair_int8(const channel_pair *pair, void *vctx) {
    conv_ctx *c = (conv_ctx *)vctx;
    const float *dyp = c->a + (pair->b * c->g->c_out + pair->oc) * c->s.out_plane;
    float *dx = c->out + (pair->b * c->g->c_in + pair->ic) * c->s.in_plane;
    size_t ki, kj, kw = c->axes[1].kernel;
    for (ki = 0; ki < c->axes[0].kernel; ki++) {
        for (kj = 0; kj < kw; kj++) {
            size_t wi = pair->w_base + ki * kw + kj;
            float s;
            int8_t z;
            mite_per_axis_of(c->wpa, wi, &s, &z);
            input_grad_tap(dx, dyp, (float)((int16_t)c->wq[wi] - (int16_t)z) * s, c->axes, ki,
                           kj);
        }
    }
}

mite_status mite_conv2d_backward_input_int8w(const float *dy, size_t dy_len, const int8_t *w,
                                             size_t w_len, const mite_per_axis *wp, float *out,
                                             size_t out_len, const mite_conv2d_geometry *g) {
    conv_ctx c;
    mite_status st;
    c.s = sizes_of(g);
    if ((st = mite_check_len("conv2d grad_output", c.s.output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d weight", c.s.weight_len, w_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_input", c.s.input_len, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (c.s.out_plane == 0 || c.s.in_plane == 0) {
        return MITE_OK;
    }
    c.g = g;
    mite_conv_axes(g, c.axes);
    c.a = dy;
    c.b = NULL;
    c.out = out;
    c.wq = w;
    c.wpa = wp;
    for_each_channel_pair(g, conv_input_pair_int8, &c);
    return MITE_OK;
}

/* dw[tap] += sum over the tap's rows of dy * x (Rust `weight_taps`). */
static void weight_taps(const float *xp, const float *dyp, float *dw,
                        const mite_window_axis axes[2]) {
    size_t w_in = axes[1].in_len, ow = axes[1].out_len, sw = axes[1].stride, ox, ix;
    mite_tap_rows it;
    mite_tap_rows_init(&it, axes);
    while (mite_tap_rows_next(&it)) {
        const float *dy_row = dyp + it.row_oy * ow;
        const float *x_row = xp + it.row_iy * w_in;
        float acc = 0.0f;
        for (ox = it.row_ox_lo, ix = it.row_ix0; ox < it.row_ox_hi; ox++, ix += sw) {
            acc += dy_row[ox] * x_row[ix];
        }
        dw[it.row_tap] += acc;
    }
}

static void conv_weight_pair(const channel_pair *pair, void *vctx) {
    conv_ctx *c = (conv_ctx *)vctx;
    const float *xp = c->a + (pair->b * c->g->c_in + pair->ic) * c->s.in_plane;
    const float *dyp = c->b + (pair->b * c->g->c_out + pair->oc) * c->s.out_plane;
    weight_taps(xp, dyp, c->out + pair->w_base, c->axes);
}

mite_status mite_conv2d_backward_weight_f32(const float *x, size_t x_len, const float *dy,
                                            size_t dy_len, float *out, size_t out_len,
                                            const mite_conv2d_geometry *g) {
    conv_ctx c;
    mite_status st;
    c.s = sizes_of(g);
    if ((st = mite_check_len("conv2d input", c.s.input_len, x_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_output", c.s.output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_weight", c.s.weight_len, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (c.s.out_plane == 0 || c.s.in_plane == 0) {
        return MITE_OK;
    }
    c.g = g;
    mite_conv_axes(g, c.axes);
    c.a = x;
    c.b = dy;
    c.out = out;
    for_each_channel_pair(g, conv_weight_pair, &c);
    return MITE_OK;
}

mite_status mite_conv2d_backward_weight_slice_f32(const float *x, size_t x_len, const float *dy,
                                                  size_t dy_len, float *out, size_t out_len,
                                                  const mite_conv2d_geometry *g,
                                                  size_t slice_start, size_t slice_len) {
    conv_sizes s = sizes_of(g);
    mite_window_axis axes[2];
    size_t b, oc, ic;
    mite_status st;
    if (g->groups != 1) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "a channel-slice weight gradient needs a dense (groups = 1) convolution",
                         0, 0, 0);
    }
    if (slice_start + slice_len < slice_start || slice_start + slice_len > g->c_in) {
        return mite_fail(MITE_ERR_GEOMETRY, "channel slice outside the input channels", 0, 0, 0);
    }
    if ((st = mite_check_len("conv2d input slice", g->n * slice_len * s.in_plane, x_len)) !=
            MITE_OK ||
        (st = mite_check_len("conv2d grad_output", s.output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_weight slice", g->c_out * slice_len * s.taps,
                             out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (s.out_plane == 0 || s.in_plane == 0 || slice_len == 0) {
        return MITE_OK;
    }
    mite_conv_axes(g, axes);
    for (b = 0; b < g->n; b++) {
        for (oc = 0; oc < g->c_out; oc++) {
            const float *dyp = dy + (b * g->c_out + oc) * s.out_plane;
            for (ic = 0; ic < slice_len; ic++) {
                const float *xp = x + (b * slice_len + ic) * s.in_plane;
                weight_taps(xp, dyp, out + (oc * slice_len + ic) * s.taps, axes);
            }
        }
    }
    return MITE_OK;
}

mite_status mite_conv2d_backward_bias_f32(const float *dy, size_t dy_len, float *out,
                                          size_t out_len, const mite_conv2d_geometry *g) {
    conv_sizes s = sizes_of(g);
    size_t pl, i;
    mite_status st;
    if ((st = mite_check_len("conv2d grad_output", s.output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_bias", g->c_out, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (s.out_plane == 0) {
        return MITE_OK;
    }
    for (pl = 0; pl < dy_len / s.out_plane; pl++) {
        float sum = -0.0f; /* the neutral element of Rust's f32 Sum */
        for (i = 0; i < s.out_plane; i++) {
            sum += dy[pl * s.out_plane + i];
        }
        out[pl % g->c_out] += sum;
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- linear */

mite_status mite_linear_f32(const float *x, size_t x_len, const float *w, size_t w_len,
                            const float *bias, size_t bias_len, float *out, size_t out_len,
                            const mite_linear_geometry *g) {
    size_t k = g->in_features, m = g->out_features, r, j, i;
    mite_status st;
    if ((st = mite_check_len("linear input", g->batch * k, x_len)) != MITE_OK ||
        (st = mite_check_len("linear weight", m * k, w_len)) != MITE_OK ||
        (st = mite_check_len("linear output", g->batch * m, out_len)) != MITE_OK) {
        return st;
    }
    if (bias != NULL && (st = mite_check_len("linear bias", m, bias_len)) != MITE_OK) {
        return st;
    }
    if (m == 0) {
        return MITE_OK;
    }
    for (r = 0; r < out_len / m; r++) {
        const float *x_row = x + r * k;
        for (j = 0; j < m; j++) {
            float acc = 0.0f;
            for (i = 0; i < k; i++) {
                acc += x_row[i] * w[j * k + i];
            }
            out[r * m + j] = (bias != NULL ? bias[j] : 0.0f) + acc;
        }
    }
    return MITE_OK;
}

mite_status mite_linear_backward_input_f32(const float *dy, size_t dy_len, const float *w,
                                           size_t w_len, float *out, size_t out_len,
                                           const mite_linear_geometry *g) {
    size_t k = g->in_features, m = g->out_features, r, j, i;
    mite_status st;
    if ((st = mite_check_len("linear grad_output", g->batch * m, dy_len)) != MITE_OK ||
        (st = mite_check_len("linear weight", m * k, w_len)) != MITE_OK ||
        (st = mite_check_len("linear grad_input", g->batch * k, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (k == 0 || m == 0) {
        return MITE_OK;
    }
    for (r = 0; r < out_len / k && r < dy_len / m; r++) {
        for (j = 0; j < m; j++) {
            float dyv = dy[r * m + j];
            for (i = 0; i < k; i++) {
                out[r * k + i] += dyv * w[j * k + i];
            }
        }
    }
    return MITE_OK;
}

mite_status mite_linear_backward_weight_f32(const float *x, size_t x_len, const float *dy,
                                            size_t dy_len, float *out, size_t out_len,
                                            const mite_linear_geometry *g) {
    size_t k = g->in_features, m = g->out_features, r, j, i;
    mite_status st;
    if ((st = mite_check_len("linear input", g->batch * k, x_len)) != MITE_OK ||
        (st = mite_check_len("linear grad_output", g->batch * m, dy_len)) != MITE_OK ||
        (st = mite_check_len("linear grad_weight", m * k, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (k == 0 || m == 0) {
        return MITE_OK;
    }
    for (r = 0; r < x_len / k && r < dy_len / m; r++) {
        for (j = 0; j < m; j++) {
            float dyv = dy[r * m + j];
            for (i = 0; i < k; i++) {
                out[j * k + i] += dyv * x[r * k + i];
            }
        }
    }
    return MITE_OK;
}

mite_status mite_linear_backward_bias_f32(const float *dy, size_t dy_len, float *out,
                                          size_t out_len, const mite_linear_geometry *g) {
    size_t m = g->out_features, r, j;
    mite_status st;
    if ((st = mite_check_len("linear grad_output", g->batch * m, dy_len)) != MITE_OK ||
        (st = mite_check_len("linear grad_bias", m, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (m == 0) {
        return MITE_OK;
    }
    for (r = 0; r < dy_len / m; r++) {
        for (j = 0; j < m; j++) {
            out[j] += dy[r * m + j];
        }
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- pooling */

mite_status mite_avg_pool_backward_f32(const float *dy, size_t dy_len, const size_t input_dims[4],
                                       const mite_window2d *window, int count_include_pad,
                                       float *out, size_t out_len) {
    size_t n = input_dims[0], c = input_dims[1], h = input_dims[2], w = input_dims[3];
    size_t odims[4], len, oh, ow, o, lo, hi, planes, pl, oy, ox, ki, kj, area;
    int empty = 0;
    mite_window_axis axes[2];
    mite_status st;
    if ((st = mite_window_axes(window, input_dims + 2, axes)) != MITE_OK) {
        return st;
    }
    oh = axes[0].out_len;
    ow = axes[1].out_len;
    odims[0] = n;
    odims[1] = c;
    odims[2] = oh;
    odims[3] = ow;
    if ((st = mite_checked_product(odims, 4, &len)) != MITE_OK ||
        (st = mite_check_len("avg_pool grad_output", len, dy_len)) != MITE_OK ||
        (st = mite_checked_product(input_dims, 4, &len)) != MITE_OK ||
        (st = mite_check_len("avg_pool grad_input", len, out_len)) != MITE_OK) {
        return st;
    }
    fill_f32(out, out_len, 0.0f);
    if (n * c == 0) {
        return MITE_OK;
    }
    for (o = 0; o < oh && !empty; o++) {
        mite_axis_valid_taps(&axes[0], o, &lo, &hi);
        empty = lo >= hi;
    }
    for (o = 0; o < ow && !empty; o++) {
        mite_axis_valid_taps(&axes[1], o, &lo, &hi);
        empty = lo >= hi;
    }
    if (empty && !count_include_pad) {
        return mite_fail(MITE_ERR_EMPTY_WINDOW, "", 0, 0, 0);
    }
    area = window->kernel[0] * window->kernel[1];
    planes = out_len / (h * w > 0 ? h * w : 1);
    if (dy_len / (oh * ow > 0 ? oh * ow : 1) < planes) {
        planes = dy_len / (oh * ow > 0 ? oh * ow : 1);
    }
    for (pl = 0; pl < planes; pl++) {
        float *dx = out + pl * h * w;
        const float *dyp = dy + pl * oh * ow;
        for (oy = 0; oy < oh; oy++) {
            size_t r_lo, r_hi;
            mite_axis_valid_taps(&axes[0], oy, &r_lo, &r_hi);
            for (ox = 0; ox < ow; ox++) {
                size_t c_lo, c_hi, div;
                float gv;
                mite_axis_valid_taps(&axes[1], ox, &c_lo, &c_hi);
                div = count_include_pad ? area : (r_hi - r_lo) * (c_hi - c_lo);
                gv = dyp[oy * ow + ox] / (float)div;
                for (ki = r_lo; ki < r_hi; ki++) {
                    size_t row = mite_axis_input_index(&axes[0], oy, ki) * w;
                    for (kj = c_lo; kj < c_hi; kj++) {
                        dx[row + mite_axis_input_index(&axes[1], ox, kj)] += gv;
                    }
                }
            }
        }
    }
    return MITE_OK;
}

mite_status mite_global_avg_pool_backward_f32(const float *dy, size_t dy_len,
                                              const size_t input_dims[4], float *out,
                                              size_t out_len) {
    size_t len, plane = input_dims[2] * input_dims[3], pl;
    float div;
    mite_status st;
    if ((st = mite_checked_product(input_dims, 4, &len)) != MITE_OK) {
        return st;
    }
    if (plane == 0) {
        return mite_fail(MITE_ERR_GEOMETRY, "global pooling over an empty plane", 0, 0, 0);
    }
    if ((st = mite_check_len("global_avg_pool grad_output", input_dims[0] * input_dims[1],
                             dy_len)) != MITE_OK ||
        (st = mite_check_len("global_avg_pool grad_input", len, out_len)) != MITE_OK) {
        return st;
    }
    div = (float)plane;
    for (pl = 0; pl < out_len / plane && pl < dy_len; pl++) {
        fill_f32(out + pl * plane, plane, dy[pl] / div);
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- masks */

size_t mite_mask_words(size_t len) { return mite_div_ceil(len, 32); }

mite_status mite_make_mask_f32(const float *x, size_t x_len, uint32_t *out, size_t out_len,
                               float min, float max) {
    size_t i;
    mite_status st;
    if (!(min <= max)) {
        return mite_fail(MITE_ERR_PARAM, "mask bounds must satisfy min <= max", 0, 0, 0);
    }
    if ((st = mite_check_len("mask words", mite_mask_words(x_len), out_len)) != MITE_OK) {
        return st;
    }
    for (i = 0; i < out_len; i++) {
        out[i] = 0;
    }
    for (i = 0; i < x_len; i++) {
        if (min < x[i] && x[i] < max) {
            out[i / 32] |= (uint32_t)1 << (i % 32);
        }
    }
    return MITE_OK;
}

mite_status mite_apply_mask_f32(const float *dy, size_t dy_len, const uint32_t *mask,
                                size_t mask_len, float *out, size_t out_len) {
    size_t i;
    mite_status st;
    if ((st = mite_check_len("mask words", mite_mask_words(dy_len), mask_len)) != MITE_OK ||
        (st = mite_check_len("masked output", dy_len, out_len)) != MITE_OK) {
        return st;
    }
    for (i = 0; i < dy_len; i++) {
        out[i] = ((mask[i / 32] >> (i % 32)) & 1u) ? dy[i] : 0.0f;
    }
    return MITE_OK;
}

/* ---------------------------------------------------------------- softmax cross-entropy */

static mite_status check_loss(size_t logits_len, const int32_t *labels, size_t labels_len,
                              size_t n, size_t c) {
    size_t len, dims[2], i;
    mite_status st;
    if (n == 0) {
        return mite_fail(MITE_ERR_GEOMETRY, "softmax_cross_entropy: empty batch", 0, 0, 0);
    }
    dims[0] = n;
    dims[1] = c;
    if ((st = mite_checked_product(dims, 2, &len)) != MITE_OK ||
        (st = mite_check_len("softmax_cross_entropy logits", len, logits_len)) != MITE_OK ||
        (st = mite_check_len("softmax_cross_entropy labels", n, labels_len)) != MITE_OK) {
        return st;
    }
    for (i = 0; i < labels_len; i++) {
        if (labels[i] < 0 || (size_t)labels[i] >= c) {
            return mite_fail(MITE_ERR_PARAM, "softmax_cross_entropy: a label is not in 0..c", 0,
                             0, 0);
        }
    }
    return MITE_OK;
}

static void log_softmax_row(const float *x, float *out, size_t c) {
    float max = -INFINITY, shift, sum = -0.0f, log_sum;
    size_t i;
    for (i = 0; i < c; i++) {
        if (x[i] > max) {
            max = x[i];
        }
    }
    /* A row of all -inf keeps max = -inf; shifting by 0 keeps the result defined. */
    shift = isfinite(max) ? max : 0.0f;
    for (i = 0; i < c; i++) {
        sum += mite_exp_f32(x[i] - shift);
    }
    log_sum = mite_ln_f32(sum);
    for (i = 0; i < c; i++) {
        out[i] = x[i] - shift - log_sum;
    }
}

mite_status mite_softmax_cross_entropy_f32(const float *logits, size_t logits_len,
                                           const int32_t *labels, size_t labels_len,
                                           float *scratch, size_t scratch_len, size_t n, size_t c,
                                           float *loss) {
    float total = -0.0f;
    size_t r, rows;
    mite_status st;
    if ((st = check_loss(logits_len, labels, labels_len, n, c)) != MITE_OK ||
        (st = mite_check_scratch(c, scratch_len)) != MITE_OK) {
        return st;
    }
    rows = logits_len / (c > 0 ? c : 1);
    for (r = 0; r < rows && r < labels_len; r++) {
        log_softmax_row(logits + r * c, scratch, c);
        total += -scratch[labels[r]];
    }
    *loss = total / (float)n;
    return MITE_OK;
}

mite_status mite_softmax_cross_entropy_backward_f32(const float *logits, size_t logits_len,
                                                    const int32_t *labels, size_t labels_len,
                                                    float grad_loss, float *out, size_t out_len,
                                                    size_t n, size_t c) {
    float scale;
    size_t r, i;
    mite_status st;
    if ((st = check_loss(logits_len, labels, labels_len, n, c)) != MITE_OK ||
        (st = mite_check_len("softmax_cross_entropy grad", logits_len, out_len)) != MITE_OK) {
        return st;
    }
    scale = grad_loss / (float)n;
    if (c == 0) {
        return MITE_OK;
    }
    for (r = 0; r < logits_len / c && r < labels_len; r++) {
        float *o = out + r * c;
        log_softmax_row(logits + r * c, o, c);
        for (i = 0; i < c; i++) {
            o[i] = mite_exp_f32(o[i]);
        }
        o[labels[r]] -= 1.0f;
        for (i = 0; i < c; i++) {
            o[i] *= scale;
        }
    }
    return MITE_OK;
}

void mite_weight_taps(const float *xp, const float *dyp, float *dw,
                      const mite_window_axis axes[2]) {
    weight_taps(xp, dyp, dw, axes);
}
