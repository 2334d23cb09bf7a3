/*
 * mite_sgd.c - the SGD / QAS parameter update in place (mirrors mite-kernels' sgd module).
 * Arithmetic in f32 except the final integer rounding, done in f64 (exact for every i32).
 * Also the convolution weight gradient fused with the update (mirrors mite-kernels' update
 * module): the same sums in the same order as mite_conv2d_backward_weight_f32, one
 * (output channel, input channel) pair at a time in a kh*kw scratch.
 */
#include "mite_internal.h"

#include <math.h>

uint64_t mite_splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double mite_stochastic_u(int64_t seed, int64_t step, uint64_t index) {
    uint64_t h = mite_splitmix64(mite_splitmix64(mite_splitmix64((uint64_t)seed) ^ (uint64_t)step) ^
                                 index);
    return (double)(h >> 40) / 16777216.0;
}

static double update_round(const mite_update_rounding *r, double v, size_t index) {
    if (r->stochastic) {
        return mite_floor_f64(v + mite_stochastic_u(r->seed, r->step, (uint64_t)index));
    }
    return mite_round_ties_even_f64_inline(v);
}

mite_status mite_accumulate(const float *g, size_t g_len, float *acc, size_t acc_len, float *out,
                            size_t out_len, int64_t step, uint32_t every, int *ready) {
    size_t i;
    int64_t rem;
    float nf;
    mite_status st;
    *ready = 0;
    if ((st = mite_check_len("accumulator", g_len, acc_len)) != MITE_OK ||
        (st = mite_check_len("accumulated gradient", g_len, out_len)) != MITE_OK) {
        return st;
    }
    if (every == 0) {
        return mite_fail(MITE_ERR_PARAM, "accumulation over zero steps", 0, 0, 0);
    }
    for (i = 0; i < g_len; i++) {
        acc[i] += g[i];
    }
    /* (step + 1) mod every, without overflowing step + 1 */
    rem = step % (int64_t)every;
    if (rem < 0) {
        rem += (int64_t)every;
    }
    if ((rem + 1) % (int64_t)every != 0) {
        return MITE_OK;
    }
    nf = (float)every;
    for (i = 0; i < g_len; i++) {
        out[i] = acc[i] / nf;
        acc[i] = 0.0f;
    }
    *ready = 1;
    return MITE_OK;
}

static mite_status check_momentum(size_t len, const float *m, size_t m_len,
                                  const mite_sgd_params *p) {
    if (m != NULL) {
        return mite_check_len("momentum", len, m_len);
    }
    if (p->momentum > 0.0f) {
        return mite_fail(MITE_ERR_PARAM, "momentum > 0 needs a momentum buffer", 0, 0, 0);
    }
    return MITE_OK;
}

mite_status mite_sgd_f32(float *w, size_t w_len, const float *g, size_t g_len, float *m,
                         size_t m_len, const mite_sgd_params *p) {
    size_t i;
    mite_status st;
    if ((st = mite_check_len("gradient", w_len, g_len)) != MITE_OK ||
        (st = check_momentum(w_len, m, m_len, p)) != MITE_OK) {
        return st;
    }
    for (i = 0; i < w_len; i++) {
        float gi = g[i];
        if (p->weight_decay != 0.0f) {
            gi += p->weight_decay * w[i];
        }
        if (m != NULL) {
            m[i] = p->momentum * m[i] + gi;
            gi = m[i];
        }
        w[i] -= p->eta * gi;
    }
    return MITE_OK;
}

/* One integer update of element i with its channel's scale s and zero point z; returns 0 when
 * the update is NaN. */
static int update_int_with(int64_t q, float gi, size_t i, float s, int32_t z, float *m,
                           const mite_sgd_params *p, double lo, double hi, int64_t *result) {
    float gt, delta;
    double v;
    if (p->weight_decay != 0.0f) {
        gi += p->weight_decay * (s * (float)(q - (int64_t)z));
    }
    gt = p->qas ? gi / s : s * gi;
    if (m != NULL) {
        m[i] = p->momentum * m[i] + gt;
        gt = m[i];
    }
    delta = p->eta * gt;
    v = update_round(&p->rounding, (double)q - (double)delta, i);
    if (isnan(v)) {
        return 0;
    }
    /* Integer-valued and clamped, so the conversion is exact. */
    v = v < lo ? lo : (v > hi ? hi : v);
    *result = (int64_t)v;
    return 1;
}

/* The channel of element i of a channel-quantized parameter. */
static size_t quant_channel(const mite_channel_quant *cq, size_t i) {
    return (i / (cq->inner > 0 ? cq->inner : 1)) % cq->channels;
}

/* One integer update; returns 0 when the update is NaN. */
static int update_int(int64_t q, float gi, size_t i, float *m, const mite_channel_quant *cq,
                      const mite_sgd_params *p, double lo, double hi, int64_t *result) {
    size_t c = quant_channel(cq, i);
    return update_int_with(q, gi, i, cq->scales[c], cq->zero_points[c], m, p, lo, hi, result);
}

mite_status mite_sgd_i8(int8_t *q, size_t q_len, const float *g, size_t g_len, float *m,
                        size_t m_len, const mite_channel_quant *cq, const mite_sgd_params *p) {
    size_t i;
    int64_t v;
    mite_status st;
    if ((st = mite_check_len("gradient", q_len, g_len)) != MITE_OK ||
        (st = check_momentum(q_len, m, m_len, p)) != MITE_OK) {
        return st;
    }
    for (i = 0; i < q_len; i++) {
        if (!update_int(q[i], g[i], i, m, cq, p, -128.0, 127.0, &v)) {
            return mite_fail(MITE_ERR_NAN_UPDATE, "", 0, 0, i);
        }
        q[i] = (int8_t)v;
    }
    return MITE_OK;
}

mite_status mite_sgd_i32(int32_t *q, size_t q_len, const float *g, size_t g_len, float *m,
                         size_t m_len, const mite_channel_quant *cq, const mite_sgd_params *p) {
    size_t i;
    int64_t v;
    mite_status st;
    if ((st = mite_check_len("gradient", q_len, g_len)) != MITE_OK ||
        (st = check_momentum(q_len, m, m_len, p)) != MITE_OK) {
        return st;
    }
    for (i = 0; i < q_len; i++) {
        if (!update_int(q[i], g[i], i, m, cq, p, -2147483648.0, 2147483647.0, &v)) {
            return mite_fail(MITE_ERR_NAN_UPDATE, "", 0, 0, i);
        }
        q[i] = (int32_t)v;
    }
    return MITE_OK;
}

/* The parameter index of slice-gradient element j (Rust `SliceView::param_index`). */
static size_t slice_param_index(const mite_slice_view *v, size_t j) {
    size_t inner = v->inner > 0 ? v->inner : 1;
    size_t per_outer = v->count * inner > 0 ? v->count * inner : 1;
    size_t o = j / per_outer, rem = j % per_outer;
    return (o * v->channels + v->start + rem / inner) * inner + rem % inner;
}

/* The update of one element: f32 parameter w or int8 parameter q (the other NULL). */
typedef struct {
    float *w;
    int8_t *q;
    float *m;
    const mite_channel_quant *cq;
    const mite_sgd_params *p;
} weight_update;

static mite_status apply_update(const weight_update *u, size_t i, float gi) {
    int64_t v;
    if (u->w != NULL) {
        if (u->p->weight_decay != 0.0f) {
            gi += u->p->weight_decay * u->w[i];
        }
        if (u->m != NULL) {
            u->m[i] = u->p->momentum * u->m[i] + gi;
            gi = u->m[i];
        }
        u->w[i] -= u->p->eta * gi;
        return MITE_OK;
    }
    if (!update_int(u->q[i], gi, i, u->m, u->cq, u->p, -128.0, 127.0, &v)) {
        return mite_fail(MITE_ERR_NAN_UPDATE, "", 0, 0, i);
    }
    u->q[i] = (int8_t)v;
    return MITE_OK;
}

/* The updates of the weight-gradient elements j0 .. j0 + n with gradients g, in that order:
 * apply_update of each, the channel of an int8 parameter found once and then followed along
 * the run (no division per element) when there is no slice view. */
static mite_status apply_run(const weight_update *u, const mite_slice_view *view, size_t j0,
                             const float *g, size_t n) {
    size_t j, c, inner, left;
    int64_t v;
    mite_status st;
    if (view != NULL || u->q == NULL) {
        for (j = 0; j < n; j++) {
            size_t i = view != NULL ? slice_param_index(view, j0 + j) : j0 + j;
            if ((st = apply_update(u, i, g[j])) != MITE_OK) {
                return st;
            }
        }
        return MITE_OK;
    }
    inner = u->cq->inner > 0 ? u->cq->inner : 1;
    c = quant_channel(u->cq, j0);
    left = inner - j0 % inner; /* elements of channel c from j0 on */
    if (u->m == NULL && u->p->weight_decay == 0.0f && !u->p->rounding.stochastic) {
        /* update_int_with without weight decay, momentum or stochastic rounding */
        const float eta = u->p->eta;
        const int qas = u->p->qas;
        for (j = 0; j < n; j++) {
            size_t i = j0 + j;
            float s, delta;
            double v;
            if (left == 0) {
                c = c + 1 < u->cq->channels ? c + 1 : 0;
                left = inner;
            }
            left--;
            s = u->cq->scales[c];
            delta = eta * (qas ? g[j] / s : s * g[j]);
            v = (double)u->q[i] - (double)delta;
            if (isnan(v)) {
                return mite_fail(MITE_ERR_NAN_UPDATE, "", 0, 0, i);
            }
            /* round_ties_even without its |v| >= 2^52 case: there the sum keeps v's sign and a
             * magnitude >= 2^52, so the clamp gives the same bound */
            v = copysign((fabs(v) + 4503599627370496.0) - 4503599627370496.0, v);
            u->q[i] = (int8_t)(v < -128.0 ? -128.0 : (v > 127.0 ? 127.0 : v));
        }
        return MITE_OK;
    }
    for (j = 0; j < n; j++) {
        size_t i = j0 + j;
        if (left == 0) {
            c = c + 1 < u->cq->channels ? c + 1 : 0;
            left = inner;
        }
        left--;
        if (!update_int_with(u->q[i], g[j], i, u->cq->scales[c], u->cq->zero_points[c], u->m,
                             u->p, -128.0, 127.0, &v)) {
            return mite_fail(MITE_ERR_NAN_UPDATE, "", 0, 0, i);
        }
        u->q[i] = (int8_t)v;
    }
    return MITE_OK;
}

/* weight_grad_update of a pointwise convolution (1x1, stride 1, no padding; neither plane
 * empty): the gradients of a block of input channels of one output channel at once (the same
 * row sums in the same order), then their updates in the order of the pair loop. */
static mite_status pointwise_grad_update(const float *x, const float *dy,
                                         const mite_conv2d_geometry *g,
                                         const mite_slice_view *view, const weight_update *u) {
    size_t plane = g->in_hw[0] * g->in_hw[1], ow = g->out_hw[1];
    size_t cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    size_t grp, oc, ic0, b, j;
    float sums[MITE_PW_BLOCK];
    mite_status st;
    for (grp = 0; grp < g->groups; grp++) {
        for (oc = grp * cout_g; oc < (grp + 1) * cout_g; oc++) {
            for (ic0 = 0; ic0 < cin_g; ic0 += MITE_PW_BLOCK) {
                size_t count = cin_g - ic0 < MITE_PW_BLOCK ? cin_g - ic0 : MITE_PW_BLOCK;
                for (j = 0; j < count; j++) {
                    sums[j] = 0.0f;
                }
                for (b = 0; b < g->n; b++) {
                    mite_pointwise_weight_sums(x + (b * g->c_in + grp * cin_g + ic0) * plane,
                                               plane, count,
                                               dy + (b * g->c_out + oc) * plane, ow, sums);
                }
                if ((st = apply_run(u, view, oc * cin_g + ic0, sums, count)) != MITE_OK) {
                    return st;
                }
            }
        }
    }
    return MITE_OK;
}

static mite_status weight_grad_update(const float *x, size_t x_len, const float *dy,
                                      size_t dy_len, const mite_conv2d_geometry *g,
                                      const mite_slice_view *view, size_t param_len,
                                      float *scratch, size_t scratch_len,
                                      const weight_update *u) {
    size_t in_plane = g->in_hw[0] * g->in_hw[1], out_plane = g->out_hw[0] * g->out_hw[1];
    size_t input_len = g->n * g->c_in * in_plane, output_len = g->n * g->c_out * out_plane;
    size_t cin_g = g->c_in / g->groups, cout_g = g->c_out / g->groups;
    size_t taps = g->window.kernel[0] * g->window.kernel[1];
    size_t weight_len = g->c_out * cin_g * taps;
    size_t grp, oc, icg, b, t;
    int empty;
    mite_window_axis axes[2];
    mite_status st;
    if ((st = mite_check_len("conv2d input", input_len, x_len)) != MITE_OK ||
        (st = mite_check_len("conv2d grad_output", output_len, dy_len)) != MITE_OK ||
        (st = mite_check_len("weight-update scratch", taps, scratch_len)) != MITE_OK) {
        return st;
    }
    if (view != NULL) {
        if (view->start + view->count < view->start ||
            view->start + view->count > view->channels) {
            return mite_fail(MITE_ERR_PARAM, "channel slice outside the parameter", 0, 0, 0);
        }
        if ((st = mite_check_len("parameter", view->outer * view->channels * view->inner,
                                 param_len)) != MITE_OK ||
            (st = mite_check_len("slice gradient", view->outer * view->count * view->inner,
                                 weight_len)) != MITE_OK) {
            return st;
        }
    } else if ((st = mite_check_len("parameter", weight_len, param_len)) != MITE_OK) {
        return st;
    }
    empty = in_plane == 0 || out_plane == 0 || input_len == 0 || output_len == 0;
    if (!empty && mite_conv_is_pointwise(g)) {
        return pointwise_grad_update(x, dy, g, view, u);
    }
    mite_conv_axes(g, axes);
    for (grp = 0; grp < g->groups; grp++) {
        for (oc = grp * cout_g; oc < (grp + 1) * cout_g; oc++) {
            for (icg = 0; icg < cin_g; icg++) {
                size_t base = (oc * cin_g + icg) * taps;
                for (t = 0; t < taps; t++) {
                    scratch[t] = 0.0f;
                }
                if (!empty) {
                    size_t ic = grp * cin_g + icg;
                    for (b = 0; b < g->n; b++) {
                        mite_weight_taps(x + (b * g->c_in + ic) * in_plane,
                                         dy + (b * g->c_out + oc) * out_plane, scratch, axes);
                    }
                }
                if ((st = apply_run(u, view, base, scratch, taps)) != MITE_OK) {
                    return st;
                }
            }
        }
    }
    return MITE_OK;
}

mite_status mite_conv2d_weight_sgd_f32(const float *x, size_t x_len, const float *dy,
                                       size_t dy_len, const mite_conv2d_geometry *g,
                                       const mite_slice_view *view, float *w, size_t w_len,
                                       float *m, size_t m_len, const mite_sgd_params *p,
                                       float *scratch, size_t scratch_len) {
    weight_update u;
    mite_status st;
    if ((st = check_momentum(w_len, m, m_len, p)) != MITE_OK) {
        return st;
    }
    u.w = w;
    u.q = NULL;
    u.m = m;
    u.cq = NULL;
    u.p = p;
    return weight_grad_update(x, x_len, dy, dy_len, g, view, w_len, scratch, scratch_len, &u);
}

mite_status mite_conv2d_weight_sgd_i8(const float *x, size_t x_len, const float *dy,
                                      size_t dy_len, const mite_conv2d_geometry *g,
                                      const mite_slice_view *view, int8_t *q, size_t q_len,
                                      float *m, size_t m_len, const mite_channel_quant *cq,
                                      const mite_sgd_params *p, float *scratch,
                                      size_t scratch_len) {
    weight_update u;
    mite_status st;
    if ((st = check_momentum(q_len, m, m_len, p)) != MITE_OK) {
        return st;
    }
    u.w = NULL;
    u.q = q;
    u.m = m;
    u.cq = cq;
    u.p = p;
    return weight_grad_update(x, x_len, dy, dy_len, g, view, q_len, scratch, scratch_len, &u);
}
