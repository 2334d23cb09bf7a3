/*
 * mite_bottleneck_backward.c - the backward pass of an inverted bottleneck (pointwise
 * expansion -> depthwise -> pointwise projection, int8 weights, batch 1) streamed one expanded
 * channel at a time (Rust `float::bottleneck_backward`): the f32 gradient of the expanded tensor
 * never exists whole, only one plane of the depthwise output and one of its input. Every
 * element is the same sum in the same order as the unfused kernels (and the Rust kernel), so
 * bit-exact; compile with -ffp-contract=off.
 *
 * A split expansion weight (u and w_frozen both given): u->w is the trained slice of the first
 * p->kept input channels, updated from u->x (the saved input's first kept channels); w_frozen
 * is the frozen remainder; dx reads both (Rust `ExpandWeight::Split`).
 */
#include "mite_internal.h"

/* The real value f32(q - z) * s of element i of an int8 tensor (Rust `int8_weight`). */
static float real_at(const int8_t *q, const mite_per_axis *pa, size_t i) {
    float s;
    int8_t z;
    mite_per_axis_of(pa, i, &s, &z);
    return (float)((int16_t)q[i] - (int16_t)z) * s;
}

/* Element (o, ic) of the expansion weight at its real value, input channels [0, kept) from the
 * trained part and the rest from the frozen part, with the whole weight's quantization (Rust
 * `split_weight`; an unsplit weight is all trained, kept = c_in, or all frozen, kept = 0). */
static float expand_at(const int8_t *trained, const int8_t *frozen, size_t kept, size_t c_in,
                       const mite_per_axis *pa, size_t o, size_t ic) {
    float s;
    int8_t z;
    int8_t q = ic < kept ? trained[o * kept + ic] : frozen[o * (c_in - kept) + ic - kept];
    mite_per_axis_of(pa, o * c_in + ic, &s, &z);
    return (float)((int16_t)q - (int16_t)z) * s;
}

/* Zeroes the elements of plane whose bit base + i of mask is clear (Rust `apply_mask`). */
static void mask_plane(float *plane, size_t len, const uint32_t *mask, size_t base) {
    size_t i;
    for (i = 0; i < len; i++) {
        size_t bit = base + i;
        if (((mask[bit / 32u] >> (bit % 32u)) & 1u) == 0u) {
            plane[i] = 0.0f;
        }
    }
}

/* The bias gradient of one plane at batch 1: zero plus the plane's sum (Rust
 * `conv2d_backward_bias`; the sum starts at -0.0, the neutral element of Rust's f32 Sum). */
static float bias_sum(const float *plane, size_t len) {
    float sum = -0.0f, acc = 0.0f;
    size_t i;
    for (i = 0; i < len; i++) {
        sum += plane[i];
    }
    acc += sum;
    return acc;
}

/* The per-axis quantization of channel c of a depthwise weight alone (its taps are elements
 * 0..taps of the sub-tensor). */
static mite_per_axis channel_of(const mite_per_axis *pa, size_t c) {
    mite_per_axis one = *pa;
    size_t k = pa->scales_len == 1u ? 0u : c;
    one.scales = pa->scales + k;
    one.scales_len = 1u;
    if (pa->zero_points_len > 0u) {
        one.zero_points = pa->zero_points + k;
        one.zero_points_len = 1u;
    }
    return one;
}

static int is_pointwise(const mite_conv2d_geometry *g) {
    const mite_window2d *w = &g->window;
    return g->groups == 1u && w->kernel[0] == 1u && w->kernel[1] == 1u && w->strides[0] == 1u &&
           w->strides[1] == 1u && w->pads[0] == 0u && w->pads[1] == 0u && w->pads[2] == 0u &&
           w->pads[3] == 0u;
}

/* Pointwise -> depthwise -> pointwise, chained, at batch 1 (Rust `check_chain`). */
static mite_status check_chain(const mite_bottleneck_backward_params *p) {
    const mite_conv2d_geometry *e = &p->expand, *d = &p->depthwise, *q = &p->project;
    if (e->n != 1u || d->n != 1u || q->n != 1u) {
        return mite_fail(MITE_ERR_GEOMETRY, "a streamed bottleneck backward needs batch 1", 0,
                         0, 0);
    }
    if (!is_pointwise(e) || !(d->groups == d->c_in && d->c_out == d->c_in) || !is_pointwise(q)) {
        return mite_fail(MITE_ERR_GEOMETRY,
                         "a streamed bottleneck backward needs pointwise -> depthwise -> "
                         "pointwise",
                         0, 0, 0);
    }
    if (e->c_out != d->c_in || e->out_hw[0] != d->in_hw[0] || e->out_hw[1] != d->in_hw[1] ||
        d->c_out != q->c_in || d->out_hw[0] != q->in_hw[0] || d->out_hw[1] != q->in_hw[1]) {
        return mite_fail(MITE_ERR_GEOMETRY, "the bottleneck's convolutions do not chain", 0, 0,
                         0);
    }
    return MITE_OK;
}

size_t mite_bottleneck_backward_scratch_len(const mite_bottleneck_backward_params *p) {
    return p->depthwise.out_hw[0] * p->depthwise.out_hw[1] +
           p->depthwise.in_hw[0] * p->depthwise.in_hw[1] + p->expand.c_in + 2u;
}

/* Elements per chunk of plane_dot's products (a local array on the stack). */
#define MITE_BB_CHUNK 32u

/* The products h[k] * real_at(x, pa, i0 + k) for k < m <= MITE_BB_CHUNK into prod, each the
 * same two roundings f32(q - z) * s then h * that as real_at's (so the same bits): for a
 * tensor with one scale in constant-length loops of 8 that gcc vectorises at -O2, else through
 * mite_dequant_run (the channel followed along the run). */
static void products(const float *h, const int8_t *x, const mite_per_axis *pa, size_t i0,
                     size_t m, float *prod) {
    size_t k, t;
    if (pa->scales_len == 1u) {
        const float s = pa->scales[0];
        const int16_t z = (int16_t)(pa->zero_points_len > 0u ? pa->zero_points[0] : 0);
        const int8_t *xq = x + i0;
        for (k = 0; k + 8u <= m; k += 8u) {
            for (t = 0; t < 8u; t++) {
                prod[k + t] = h[k + t] * ((float)((int16_t)xq[k + t] - z) * s);
            }
        }
        for (; k < m; k++) {
            prod[k] = h[k] * ((float)((int16_t)xq[k] - z) * s);
        }
    } else {
        mite_dequant_run(pa, x, i0, m, prod);
        for (k = 0; k < m; k++) {
            prod[k] = h[k] * prod[k];
        }
    }
}

/* One element of update_row's gradient: over the rows r of one input-channel plane (height
 * rows of width elements, the channel's x from i0 and h both contiguous), zero plus each row's
 * sum, rows in order, each row's sum from zero with its products h[r * width + k] *
 * real_at(x, pa, i0 + r * width + k) added k ascending. The products are formed a chunk of the
 * plane at a time (rows may cross chunks); the sums are exactly those additions in that
 * order. */
static float plane_dot(const float *h, const int8_t *x, const mite_per_axis *pa, size_t i0,
                       size_t width, size_t height) {
    float prod[MITE_BB_CHUNK], grad = 0.0f, acc = 0.0f;
    size_t n = width * height, left = width, j, k, m, end;
    for (j = 0; j < n; j += m) {
        m = n - j < MITE_BB_CHUNK ? n - j : MITE_BB_CHUNK;
        products(h + j, x, pa, i0 + j, m, prod);
        for (k = 0; k < m; k = end) {
            /* the products of this chunk in the current row: up to its end or the chunk's */
            end = m - k < left ? m : k + left;
            left -= end - k;
            for (; k + 4u <= end; k += 4u) {
                acc += prod[k];
                acc += prod[k + 1u];
                acc += prod[k + 2u];
                acc += prod[k + 3u];
            }
            for (; k < end; k++) {
                acc += prod[k];
            }
            if (left == 0) {
                grad += acc;
                acc = 0.0f;
                left = width;
            }
        }
    }
    return grad;
}

/* Row o of the expansion's weight gradient over its c_in trained input channels into row (Rust
 * `update_row`: row sums added to zero in row order, each row's sum from zero with k
 * ascending, by plane_dot), then its update by
 * mite_conv2d_weight_sgd_i8 on a 1x1 convolution of one output channel whose input is that row
 * and whose output gradient is 1: its gradient is 0 + (0 + 1 * row[ic]) = row[ic] exactly
 * (row[ic] is never -0.0, being a sum started at +0.0), and the slice view {1, c_mid, c_in, o,
 * 1} makes element ic parameter element o * c_in + ic, as the unfused update indexes it
 * (channel quantization and stochastic rounding). */
static mite_status update_row(const mite_bottleneck_backward_params *p,
                              const mite_bottleneck_backward_update *u, const float *h, size_t o,
                              size_t c_in, float *row) {
    size_t width = p->expand.out_hw[1], height = p->expand.out_hw[0];
    size_t plane = width * height, ic;
    const float one = 1.0f;
    float taps[1];
    mite_conv2d_geometry g;
    mite_slice_view view;
    for (ic = 0; ic < c_in; ic++) {
        row[ic] = plane_dot(h, u->x, u->x_quant, ic * plane, width, height);
    }
    g = p->expand;
    g.c_in = c_in;
    g.in_hw[0] = g.in_hw[1] = 1u;
    g.out_hw[0] = g.out_hw[1] = 1u;
    g.c_out = 1u;
    view.outer = 1u;
    view.channels = p->expand.c_out;
    view.inner = c_in;
    view.start = o;
    view.count = 1u;
    return mite_conv2d_weight_sgd_i8(row, c_in, &one, 1u, &g, &view, u->w, u->w_len, u->m,
                                     u->m_len, u->cq, u->sgd, taps, 1u);
}

mite_status mite_bottleneck_backward(const float *dy, size_t dy_len, const int8_t *w_project,
                                     size_t w_project_len, const uint32_t *mask_depthwise,
                                     size_t mask_depthwise_len, const int8_t *w_depthwise,
                                     size_t w_depthwise_len, const uint32_t *mask_expand,
                                     size_t mask_expand_len, const int8_t *w_frozen,
                                     size_t w_frozen_len, const mite_bottleneck_backward_update *u,
                                     mite_bottleneck_backward_grads *out, float *scratch,
                                     size_t scratch_len, const mite_bottleneck_backward_params *p) {
    const mite_conv2d_geometry *gp = &p->project, *gd = &p->depthwise, *ge = &p->expand;
    size_t mid = gd->c_in, c_out = gp->c_out, c_in = ge->c_in;
    size_t plane_out = gd->out_hw[0] * gd->out_hw[1], plane_in = gd->in_hw[0] * gd->in_hw[1];
    size_t taps = gd->window.kernel[0] * gd->window.kernel[1];
    int split = u != NULL && w_frozen != NULL;
    /* Input channels of the trained part (u->w); w_frozen holds the others. */
    size_t kept = split ? p->kept : (u != NULL ? c_in : 0u);
    const int8_t *trained = u != NULL ? u->w : NULL;
    float *h_out = scratch, *h_in = scratch + plane_out, *row = scratch + plane_out + plane_in;
    mite_conv2d_geometry one;
    size_t o, j, i, ic;
    mite_status st;
    if ((st = check_chain(p)) != MITE_OK ||
        (st = mite_check_len("projection grad_output", c_out * plane_out, dy_len)) != MITE_OK ||
        (st = mite_check_len("projection weight", c_out * mid, w_project_len)) != MITE_OK ||
        (st = mite_check_len("depthwise weight", mid * taps, w_depthwise_len)) != MITE_OK ||
        (st = mite_check_len("depthwise mask", (mid * plane_out + 31u) / 32u,
                             mask_depthwise_len)) != MITE_OK ||
        (st = mite_check_len("expansion mask", (mid * plane_in + 31u) / 32u, mask_expand_len)) !=
            MITE_OK ||
        (st = mite_check_scratch(mite_bottleneck_backward_scratch_len(p), scratch_len)) !=
            MITE_OK) {
        return st;
    }
    if (split) {
        if (kept > c_in) {
            return mite_fail(MITE_ERR_PARAM,
                             "a split expansion weight keeps more input channels than the "
                             "expansion has",
                             0, 0, 0);
        }
        if (p->expand_w != NULL && p->expand_w->scales_len != 1u &&
            p->expand_w->scales_len != mid) {
            return mite_fail(MITE_ERR_PARAM,
                             "a split weight is quantized per tensor or per output channel", 0,
                             0, 0);
        }
        if ((st = mite_check_len("expansion weight (trained part)", mid * kept, u->w_len)) !=
                MITE_OK ||
            (st = mite_check_len("expansion weight (frozen part)", mid * (c_in - kept),
                                 w_frozen_len)) != MITE_OK ||
            (st = mite_check_len("expansion input (trained part)", kept * plane_in,
                                 u->x_len)) != MITE_OK) {
            return st;
        }
    } else if ((out->dx != NULL || u != NULL) &&
               (st = mite_check_len("expansion weight", mid * c_in,
                                    u != NULL ? u->w_len : w_frozen_len)) != MITE_OK) {
        return st;
    }
    if (out->dx != NULL) {
        if (p->expand_w == NULL || (u == NULL && w_frozen == NULL)) {
            return mite_fail(MITE_ERR_PARAM, "dx needs the expansion weight", 0, 0, 0);
        }
        if ((st = mite_check_len("expansion grad_input", c_in * plane_in, out->dx_len)) !=
            MITE_OK) {
            return st;
        }
        for (i = 0; i < out->dx_len; i++) {
            out->dx[i] = 0.0f;
        }
    }
    if (u != NULL && !split &&
        (st = mite_check_len("expansion input", c_in * plane_in, u->x_len)) != MITE_OK) {
        return st;
    }
    if ((out->db_depthwise != NULL &&
         (st = mite_check_len("bias gradient", mid, out->db_depthwise_len)) != MITE_OK) ||
        (out->db_expand != NULL &&
         (st = mite_check_len("bias gradient", mid, out->db_expand_len)) != MITE_OK)) {
        return st;
    }
    one = *gd;
    one.c_in = one.c_out = one.groups = 1u;
    for (o = 0; o < mid; o++) {
        mite_per_axis dq = channel_of(p->depthwise_w, o);
        /* 1: plane o of the projection's input gradient, j ascending from zero. */
        for (i = 0; i < plane_out; i++) {
            h_out[i] = 0.0f;
        }
        for (j = 0; j < c_out; j++) {
            mite_axpy_f32(h_out, dy + j * plane_out, real_at(w_project, p->project_w, j * mid + o),
                          plane_out);
        }
        /* 2: the depthwise mask and bias gradient. */
        mask_plane(h_out, plane_out, mask_depthwise, o * plane_out);
        if (out->db_depthwise != NULL) {
            out->db_depthwise[o] = bias_sum(h_out, plane_out);
        }
        /* 3: the depthwise transposed convolution of the plane. */
        if ((st = mite_conv2d_backward_input_int8w(h_out, plane_out, w_depthwise + o * taps, taps,
                                                   &dq, h_in, plane_in, &one)) != MITE_OK) {
            return st;
        }
        /* 4: the expansion's mask and bias gradient. */
        mask_plane(h_in, plane_in, mask_expand, o * plane_in);
        if (out->db_expand != NULL) {
            out->db_expand[o] = bias_sum(h_in, plane_in);
        }
        /* 5: dx from row o of the weight before its update. */
        if (out->dx != NULL) {
            for (ic = 0; ic < c_in; ic++) {
                mite_axpy_f32(out->dx + ic * plane_in, h_in,
                              expand_at(trained, w_frozen, kept, c_in, p->expand_w, o, ic),
                              plane_in);
            }
        }
        /* 6: row o's update (of its trained channels: none, nothing to update). */
        if (u != NULL && kept > 0u && (st = update_row(p, u, h_in, o, kept, row)) != MITE_OK) {
            return st;
        }
    }
    return MITE_OK;
}
