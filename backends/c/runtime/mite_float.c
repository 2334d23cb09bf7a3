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
    mite_tap_span spans[MITE_TAP_TABLE];
    int tabled; /* whether spans holds every tap's span */
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

/* The span of tap t: from the context's table when the window has one, else computed. */
static const mite_tap_span *span_at(const conv_ctx *c, size_t t, mite_tap_span *tmp) {
    if (c->tabled) {
        return &c->spans[t];
    }
    mite_tap_span_of(c->axes, t, tmp);
    return tmp;
}

/* dx += wv * dy over the rows of one tap's span, rows ascending: the order of mite_tap_rows
 * within one tap. When the span covers whole rows of equal length in both planes and the rows
 * follow each other, it is one loop over the plane. */
static void input_grad_tap(float *restrict dx, const float *restrict dyp, float wv,
                           const mite_window_axis axes[2], const mite_tap_span *sp) {
    size_t w_in = axes[1].in_len, ow = axes[1].out_len, sw = axes[1].stride;
    size_t sy = axes[0].stride, n = sp->ox_hi - sp->ox_lo, rows = sp->oy_hi - sp->oy_lo, r, i;
    if (rows == 0) {
        return;
    }
    if (n == w_in && n == ow && sw == 1 && sy == 1) {
        float *d = dx + sp->iy0 * w_in;
        const float *y = dyp + sp->oy_lo * ow;
        mite_axpy_f32(d, y, wv, rows * ow);
        return;
    }
    for (r = 0; r < rows; r++) {
        const float *dy_row = dyp + (sp->oy_lo + r) * ow + sp->ox_lo;
        float *dx_row = dx + (sp->iy0 + r * sy) * w_in + sp->ix0;
        if (sw == 1) {
            mite_axpy_f32(dx_row, dy_row, wv, n);
        } else {
            for (i = 0; i < n; i++) {
                dx_row[i * sw] += wv * dy_row[i];
            }
        }
    }
}

static void conv_input_pair(const channel_pair *pair, void *vctx) {
    conv_ctx *c = (conv_ctx *)vctx;
    const float *dyp = c->a + (pair->b * c->g->c_out + pair->oc) * c->s.out_plane;
    float *dx = c->out + (pair->b * c->g->c_in + pair->ic) * c->s.in_plane;
    size_t t;
    mite_tap_span tmp;
    float wt[MITE_TAP_TABLE];
    int run = c->wq != NULL && c->s.taps <= MITE_TAP_TABLE;
    if (run) {
        mite_dequant_run(c->wpa, c->wq, pair->w_base, c->s.taps, wt); /* the pair's taps */
    }
    for (t = 0; t < c->s.taps; t++) {
        float wv = run ? wt[t]
                       : (c->wq != NULL ? mite_dequant_at(c->wpa, c->wq, pair->w_base + t)
                                        : c->b[pair->w_base + t]);
        input_grad_tap(dx, dyp, wv, c->axes, span_at(c, t, &tmp));
    }
}

/* Output channels per chunk of dequantized weights in the pointwise input gradient. */
#define PW_OC 256u
/* Input channels and plane elements per register block of the pointwise input gradient. */
#define PW_IC 4u
#define PW_P 8u

/* dx[j][k] += w[oc][j] * dy[oc][k] for 4 input channels j (planes `plane` apart) and n <= PW_P
 * elements k, over noc output channels ascending (weights 4 per output channel): the order of
 * the one-pair-at-a-time loop, with the sums held in registers (inline, so that a full block,
 * n = PW_P, is a constant trip count gcc vectorises). */
static inline void pointwise_input_block(float *restrict dx, size_t plane,
                                         const float *restrict dy, const float *restrict w,
                                         size_t noc, size_t n) {
    float a0[PW_P], a1[PW_P], a2[PW_P], a3[PW_P];
    size_t k, oc;
    for (k = 0; k < n; k++) {
        a0[k] = dx[k];
        a1[k] = dx[plane + k];
        a2[k] = dx[2 * plane + k];
        a3[k] = dx[3 * plane + k];
    }
    for (oc = 0; oc < noc; oc++) {
        const float *d = dy + oc * plane;
        float w0 = w[oc * PW_IC], w1 = w[oc * PW_IC + 1], w2 = w[oc * PW_IC + 2],
              w3 = w[oc * PW_IC + 3];
        for (k = 0; k < n; k++) {
            a0[k] += w0 * d[k];
            a1[k] += w1 * d[k];
            a2[k] += w2 * d[k];
            a3[k] += w3 * d[k];
        }
    }
    for (k = 0; k < n; k++) {
        dx[k] = a0[k];
        dx[plane + k] = a1[k];
        dx[2 * plane + k] = a2[k];
        dx[3 * plane + k] = a3[k];
    }
}

/* The input gradient of a pointwise, ungrouped convolution (out already zero): every dx
 * element sums w * dy over the output channels ascending, as the pair loop does, computed a
 * block of input channels and plane elements at a time. The weight is the f32 w or the int8 wq
 * dequantized (the other NULL). */
static void pointwise_input_grad(const float *dy, const float *w, const int8_t *wq,
                                 const mite_per_axis *wp, float *out,
                                 const mite_conv2d_geometry *g) {
    size_t plane = g->in_hw[0] * g->in_hw[1], c_in = g->c_in, c_out = g->c_out;
    size_t b, ic0, oc0, oc, j, p, nic, noc;
    float wbuf[PW_OC * PW_IC];
    for (b = 0; b < g->n; b++) {
        for (ic0 = 0; ic0 < c_in; ic0 += PW_IC) {
            float *dx = out + (b * c_in + ic0) * plane;
            nic = c_in - ic0 < PW_IC ? c_in - ic0 : PW_IC;
            for (oc0 = 0; oc0 < c_out; oc0 += PW_OC) {
                const float *dyc = dy + (b * c_out + oc0) * plane;
                noc = c_out - oc0 < PW_OC ? c_out - oc0 : PW_OC;
                for (oc = 0; oc < noc; oc++) {
                    size_t i0 = (oc0 + oc) * c_in + ic0;
                    float *wrow = wbuf + oc * PW_IC;
                    if (wq != NULL) {
                        mite_dequant_run(wp, wq, i0, nic, wrow);
                    } else {
                        for (j = 0; j < nic; j++) {
                            wrow[j] = w[i0 + j];
                        }
                    }
                    for (j = nic; j < PW_IC; j++) {
                        wrow[j] = 0.0f;
                    }
                }
                p = 0;
                if (nic == PW_IC) {
                    for (; p + PW_P <= plane; p += PW_P) {
                        pointwise_input_block(dx + p, plane, dyc + p, wbuf, noc, PW_P);
                    }
                    if (p < plane) {
                        pointwise_input_block(dx + p, plane, dyc + p, wbuf, noc, plane - p);
                    }
                    continue;
                }
                for (j = 0; j < nic; j++) {
                    for (oc = 0; oc < noc; oc++) {
                        mite_axpy_f32(dx + j * plane + p, dyc + oc * plane + p,
                                      wbuf[oc * PW_IC + j], plane - p);
                    }
                }
            }
        }
    }
}

/* The shared body of the two input gradients (lengths checked): the weight is w (f32) or wq
 * with its quantization wp (the other NULL). */
static mite_status backward_input(const float *dy, const float *w, const int8_t *wq,
                                  const mite_per_axis *wp, float *out, size_t out_len,
                                  const mite_conv2d_geometry *g) {
    conv_ctx c;
    c.s = sizes_of(g);
    fill_f32(out, out_len, 0.0f);
    if (c.s.out_plane == 0 || c.s.in_plane == 0) {
        return MITE_OK;
    }
    if (g->groups == 1 && mite_conv_is_pointwise(g) && c.s.input_len > 0 && c.s.output_len > 0) {
        pointwise_input_grad(dy, w, wq, wp, out, g);
        return MITE_OK;
    }
    c.g = g;
    mite_conv_axes(g, c.axes);
    c.tabled = mite_tap_spans(c.axes, c.spans);
    c.a = dy;
    c.b = w;
    c.out = out;
    c.wq = wq;
    c.wpa = wp;
    for_each_channel_pair(g, conv_input_pair, &c);
    return MITE_OK;
}

mite_status mite_conv2d_backward_input_f32(const float *dy, size_t dy_len, const float *w,
                                           size_t w_len, float *out, size_t out_len,
                                           const mite_conv2d_geometry *g) {
    conv_sizes s = sizes_of(g);
    mite_status st;
    if ((st = mite_check_len("conv2d grad_output", s.output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d weight", s.weight_len, w_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_input", s.input_len, out_len)) != MITE_OK) {
        return st;
    }
    return backward_input(dy, w, NULL, NULL, out, out_len, g);
}

/* The input gradient with the int8 weight dequantized element by element: f32(q - z) * s of its
 * channel, the same value mite_dequantize computes (Rust `conv2d_backward_input_int8`). */
mite_status mite_conv2d_backward_input_int8w(const float *dy, size_t dy_len, const int8_t *w,
                                             size_t w_len, const mite_per_axis *wp, float *out,
                                             size_t out_len, const mite_conv2d_geometry *g) {
    conv_sizes s = sizes_of(g);
    mite_status st;
    if ((st = mite_check_len("conv2d grad_output", s.output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("conv2d weight", s.weight_len, w_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_input", s.input_len, out_len)) != MITE_OK) {
        return st;
    }
    return backward_input(dy, NULL, w, wp, out, out_len, g);
}

/* dw[tap] += sum over the tap's rows of dy * x (Rust `weight_taps`): taps row-major, rows
 * ascending, each row summed from 0 in order then added. */
static void weight_taps(const float *xp, const float *dyp, float *dw,
                        const mite_window_axis axes[2]) {
    size_t w_in = axes[1].in_len, ow = axes[1].out_len, sw = axes[1].stride;
    size_t sy = axes[0].stride, taps = axes[0].kernel * axes[1].kernel, t, r, i;
    for (t = 0; t < taps; t++) {
        mite_tap_span sp;
        size_t n, rows;
        mite_tap_span_of(axes, t, &sp);
        n = sp.ox_hi - sp.ox_lo;
        rows = sp.oy_hi - sp.oy_lo;
        for (r = 0; r < rows; r++) {
            const float *dy_row = dyp + (sp.oy_lo + r) * ow + sp.ox_lo;
            const float *x_row = xp + (sp.iy0 + r * sy) * w_in + sp.ix0;
            float acc = 0.0f;
            if (sw == 1) {
                for (i = 0; i < n; i++) {
                    acc += dy_row[i] * x_row[i];
                }
            } else {
                for (i = 0; i < n; i++) {
                    acc += dy_row[i] * x_row[i * sw];
                }
            }
            dw[t] += acc;
        }
    }
}

void mite_pointwise_weight_sums(const float *x, size_t plane, size_t count, const float *dyp,
                                size_t ow, float *sums) {
    size_t rows = ow > 0 ? plane / ow : 0, r, i, j;
    if (count == MITE_PW_BLOCK) {
        const float *x0 = x, *x1 = x0 + plane, *x2 = x1 + plane, *x3 = x2 + plane;
        const float *x4 = x3 + plane, *x5 = x4 + plane, *x6 = x5 + plane, *x7 = x6 + plane;
        for (r = 0; r < rows; r++) {
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            float a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
            size_t o = r * ow;
            for (i = o; i < o + ow; i++) {
                float d = dyp[i];
                a0 += d * x0[i];
                a1 += d * x1[i];
                a2 += d * x2[i];
                a3 += d * x3[i];
                a4 += d * x4[i];
                a5 += d * x5[i];
                a6 += d * x6[i];
                a7 += d * x7[i];
            }
            sums[0] += a0;
            sums[1] += a1;
            sums[2] += a2;
            sums[3] += a3;
            sums[4] += a4;
            sums[5] += a5;
            sums[6] += a6;
            sums[7] += a7;
        }
        return;
    }
    for (j = 0; j < count; j++) {
        const float *xj = x + j * plane;
        for (r = 0; r < rows; r++) {
            float acc = 0.0f;
            for (i = r * ow; i < (r + 1) * ow; i++) {
                acc += dyp[i] * xj[i];
            }
            sums[j] += acc;
        }
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
