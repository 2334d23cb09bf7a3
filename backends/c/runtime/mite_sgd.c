/*
 * mite_sgd.c - the SGD / QAS parameter update in place (mirrors mite-kernels' sgd module).
 * Arithmetic in f32 except the final integer rounding, done in f64 (exact for every i32).
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
    return mite_round_ties_even_f64(v);
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

/* One integer update; returns 0 when the update is NaN. */
static int update_int(int64_t q, float gi, size_t i, float *m, const mite_channel_quant *cq,
                      const mite_sgd_params *p, double lo, double hi, int64_t *result) {
    size_t c = (i / (cq->inner > 0 ? cq->inner : 1)) % cq->channels;
    float s = cq->scales[c];
    int32_t z = cq->zero_points[c];
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
