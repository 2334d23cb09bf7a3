/*
 * harness.c - parity harness of the C kernels (see harness.h). Protocol: each case is an op
 * name followed by its fields as decimal tokens (f32 / f64 as their IEEE bit patterns, arrays
 * as a count then the elements, optional arrays as 0, or 1 then the array). Output per case:
 * "ok" or "err CODE EXPECTED FOUND INDEX MESSAGE", then one line of outputs.
 */
#include "harness.h"

#include <stdint.h>
#include <string.h>

#include "mite_kernels.h"

static int bad_input;

/* ---------------------------------------------------------------- reading */

static int read_token(char *buf, size_t cap) {
    int ch;
    size_t n = 0;
    do {
        ch = hio_getc();
    } while (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t');
    if (ch < 0) {
        return 0;
    }
    while (ch >= 0 && ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
        if (n + 1 < cap) {
            buf[n++] = (char)ch;
        }
        ch = hio_getc();
    }
    buf[n] = '\0';
    return 1;
}

static int64_t rd_i(void) {
    char buf[32];
    const char *p = buf;
    int neg = 0;
    uint64_t v = 0;
    if (!read_token(buf, sizeof buf)) {
        bad_input = 1;
        return 0;
    }
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            bad_input = 1;
            return 0;
        }
        v = v * 10u + (uint64_t)(*p - '0');
    }
    if (neg) {
        return v == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)v;
    }
    return (int64_t)v;
}

static uint64_t rd_u64(void) {
    char buf[32];
    const char *p = buf;
    uint64_t v = 0;
    if (!read_token(buf, sizeof buf)) {
        bad_input = 1;
        return 0;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            bad_input = 1;
            return 0;
        }
        v = v * 10u + (uint64_t)(*p - '0');
    }
    return v;
}

static size_t rd_u(void) { return (size_t)rd_u64(); }

static float rd_f(void) {
    uint32_t bits = (uint32_t)rd_u64();
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double rd_d(void) {
    uint64_t bits = rd_u64();
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void *alloc_or_fail(size_t count, size_t size) {
    void *p = hio_alloc(count * size + 1);
    if (p == NULL) {
        bad_input = 1;
    }
    return p;
}

/* An array: count, then elements. */
#define READ_ARRAY(NAME, TYPE, READ)                                                              \
    static TYPE *NAME(size_t *len) {                                                              \
        size_t i, n = rd_u();                                                                     \
        TYPE *a;                                                                                  \
        if (bad_input || n > ((size_t)1 << 24)) {                                                 \
            bad_input = 1;                                                                        \
            *len = 0;                                                                             \
            return NULL;                                                                          \
        }                                                                                         \
        a = (TYPE *)alloc_or_fail(n, sizeof(TYPE));                                              \
        if (a == NULL) {                                                                          \
            *len = 0;                                                                             \
            return NULL;                                                                          \
        }                                                                                         \
        for (i = 0; i < n; i++) {                                                                 \
            a[i] = (TYPE)READ();                                                                  \
        }                                                                                         \
        *len = n;                                                                                 \
        return a;                                                                                 \
    }

READ_ARRAY(rd_i8s, int8_t, rd_i)
READ_ARRAY(rd_i32s, int32_t, rd_i)
READ_ARRAY(rd_u32s, uint32_t, rd_u64)
READ_ARRAY(rd_f32s, float, rd_f)
READ_ARRAY(rd_f64s, double, rd_d)

/* A buffer of n zeroed elements (outputs). */
static void *zeros(size_t n, size_t size) { return alloc_or_fail(n, size); }

static void rd_window(mite_window2d *w) {
    w->kernel[0] = rd_u();
    w->kernel[1] = rd_u();
    w->strides[0] = rd_u();
    w->strides[1] = rd_u();
    w->pads[0] = rd_u();
    w->pads[1] = rd_u();
    w->pads[2] = rd_u();
    w->pads[3] = rd_u();
    w->dilations[0] = rd_u();
    w->dilations[1] = rd_u();
}

/* Geometry fields: n c_in h w c_out groups window. */
typedef struct {
    size_t n, c_in, hw[2], c_out, groups;
    mite_window2d window;
} conv_fields;

static void rd_conv_fields(conv_fields *f) {
    f->n = rd_u();
    f->c_in = rd_u();
    f->hw[0] = rd_u();
    f->hw[1] = rd_u();
    f->c_out = rd_u();
    f->groups = rd_u();
    rd_window(&f->window);
}

static mite_status init_conv(mite_conv2d_geometry *g, const conv_fields *f) {
    return mite_conv2d_geometry_init(g, f->n, f->c_in, f->hw, f->c_out, f->groups, &f->window);
}

static void rd_quant(mite_quant_params *q) {
    q->scale = rd_f();
    q->zero_point = (int8_t)rd_i();
}

static void rd_range(mite_act_range *r) {
    r->min = (int8_t)rd_i();
    r->max = (int8_t)rd_i();
}

static void rd_output_stage(mite_output_stage *s) {
    size_t a, b, c;
    s->requant.rounding = (mite_rounding)rd_u();
    s->requant.scales = rd_f64s(&a);
    s->requant.multipliers = rd_i32s(&b);
    s->requant.shifts = rd_i32s(&c);
    s->requant.channels = a;
    if (a != b || a != c || a == 0) {
        bad_input = 1;
    }
    s->zero_point = (int8_t)rd_i();
    rd_range(&s->range);
}

static void rd_dims(size_t d[4]) {
    size_t i;
    for (i = 0; i < 4; i++) {
        d[i] = rd_u();
    }
}

/* ---------------------------------------------------------------- writing */

static void put(const char *s) { hio_write(s, strlen(s)); }

static void put_u64(uint64_t v) {
    char buf[24];
    size_t n = sizeof buf;
    do {
        buf[--n] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    hio_write(buf + n, sizeof buf - n);
}

static void put_i64(int64_t v) {
    if (v < 0) {
        put("-");
        put_u64((uint64_t)0 - (uint64_t)v);
    } else {
        put_u64((uint64_t)v);
    }
}

static void put_status(mite_status st) {
    const mite_error *e = mite_last_error();
    if (st == MITE_OK) {
        put("ok\n");
        return;
    }
    put("err ");
    put_u64((uint64_t)e->code);
    put(" ");
    put_u64((uint64_t)e->expected);
    put(" ");
    put_u64((uint64_t)e->found);
    put(" ");
    put_u64((uint64_t)e->index);
    put(" ");
    put(e->message);
    put("\n");
}

static void put_i8s(const int8_t *a, size_t n) {
    size_t i;
    put(" ");
    put_u64(n);
    for (i = 0; i < n; i++) {
        put(" ");
        put_i64(a[i]);
    }
}

static void put_i32s(const int32_t *a, size_t n) {
    size_t i;
    put(" ");
    put_u64(n);
    for (i = 0; i < n; i++) {
        put(" ");
        put_i64(a[i]);
    }
}

static void put_u32s(const uint32_t *a, size_t n) {
    size_t i;
    put(" ");
    put_u64(n);
    for (i = 0; i < n; i++) {
        put(" ");
        put_u64(a[i]);
    }
}

/* Every NaN prints as the positive quiet NaN: FPUs differ in the sign and payload of the NaN an
 * operation produces (x86's default NaN is negative, Arm's positive). */
static void put_f32(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (f != f) {
        bits = 0x7fc00000u;
    }
    put(" ");
    put_u64(bits);
}

static void put_f32s(const float *a, size_t n) {
    size_t i;
    put(" ");
    put_u64(n);
    for (i = 0; i < n; i++) {
        put_f32(a[i]);
    }
}

static void put_int(int64_t v) {
    put(" ");
    put_i64(v);
}

static void end_line(void) { put("\n"); }

/* ---------------------------------------------------------------- ops */

static void op_conv_i8(void) {
    conv_fields f;
    mite_conv2d_int8_params p;
    size_t x_len, w_len, b_len = 0, zp_len, out_len, scratch_len;
    const int8_t *x, *w;
    const int32_t *bias = NULL;
    int8_t *out;
    int32_t *scratch;
    mite_status st;
    rd_conv_fields(&f);
    p.x_zero_point = (int8_t)rd_i();
    p.w_zero_points = rd_i8s(&zp_len);
    p.w_zero_points_len = zp_len;
    rd_output_stage(&p.out);
    p.bias_add = (mite_bias_add)rd_u();
    x = rd_i8s(&x_len);
    w = rd_i8s(&w_len);
    if (rd_u()) {
        bias = rd_i32s(&b_len);
    }
    out_len = rd_u();
    scratch_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    scratch = (int32_t *)zeros(scratch_len, 4);
    if (bad_input) {
        return;
    }
    st = init_conv(&p.geometry, &f);
    if (st == MITE_OK) {
        st = mite_conv2d_int8(x, x_len, w, w_len, bias, b_len, out, out_len, scratch,
                              scratch_len, &p);
    }
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

/* One bottleneck stage: x_zp, w_zp list, output stage, bias mode. */
static void rd_bottleneck_stage(mite_conv2d_int8_params *p) {
    size_t zp_len;
    p->x_zero_point = (int8_t)rd_i();
    p->w_zero_points = rd_i8s(&zp_len);
    p->w_zero_points_len = zp_len;
    rd_output_stage(&p->out);
    p->bias_add = (mite_bias_add)rd_u();
}

/* A weight, then a bias when its flag is set. */
static const int32_t *rd_weight_bias(const int8_t **w, size_t *w_len, size_t *b_len) {
    *w = rd_i8s(w_len);
    *b_len = 0;
    return rd_u() ? rd_i32s(b_len) : NULL;
}

/* n c_in h w c_mid c_out, the depthwise window, the first convolution's window, three
 * stages, x, (w, bias) x 3, out_len, scratch_len. */
static void op_bottleneck_i8(void) {
    mite_bottleneck_int8_params p;
    mite_bottleneck_int8_weights wts;
    mite_window2d dw, first, pw = {{1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}};
    size_t n, c_in, hw[2], c_mid, c_out, x_len, out_len, scratch_len;
    const int8_t *x;
    int8_t *out, *scratch;
    mite_status st;
    n = rd_u();
    c_in = rd_u();
    hw[0] = rd_u();
    hw[1] = rd_u();
    c_mid = rd_u();
    c_out = rd_u();
    rd_window(&dw);
    rd_window(&first);
    rd_bottleneck_stage(&p.expand);
    rd_bottleneck_stage(&p.depthwise);
    rd_bottleneck_stage(&p.project);
    x = rd_i8s(&x_len);
    wts.b_expand = rd_weight_bias(&wts.w_expand, &wts.w_expand_len, &wts.b_expand_len);
    wts.b_depthwise =
        rd_weight_bias(&wts.w_depthwise, &wts.w_depthwise_len, &wts.b_depthwise_len);
    wts.b_project = rd_weight_bias(&wts.w_project, &wts.w_project_len, &wts.b_project_len);
    out_len = rd_u();
    scratch_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    scratch = (int8_t *)zeros(scratch_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_conv2d_geometry_init(&p.expand.geometry, n, c_in, hw, c_mid, 1, &first);
    if (st == MITE_OK) {
        st = mite_conv2d_geometry_init(&p.depthwise.geometry, n, c_mid,
                                       p.expand.geometry.out_hw, c_mid, c_mid, &dw);
    }
    if (st == MITE_OK) {
        st = mite_conv2d_geometry_init(&p.project.geometry, n, c_mid,
                                       p.depthwise.geometry.out_hw, c_out, 1, &pw);
    }
    if (st == MITE_OK) {
        st = mite_bottleneck_int8(x, x_len, &wts, out, out_len, scratch, scratch_len, &p);
    }
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

/* A bottleneck's weights and biases (w, bias) x 3. */
static void rd_bottleneck_weights(mite_bottleneck_int8_weights *wts) {
    wts->b_expand = rd_weight_bias(&wts->w_expand, &wts->w_expand_len, &wts->b_expand_len);
    wts->b_depthwise =
        rd_weight_bias(&wts->w_depthwise, &wts->w_depthwise_len, &wts->b_depthwise_len);
    wts->b_project = rd_weight_bias(&wts->w_project, &wts->w_project_len, &wts->b_project_len);
}

/* The geometries of a bottleneck [n, c_in, hw] -> c_mid -> c_out. */
static mite_status bottleneck_geometry(mite_bottleneck_int8_params *p, size_t n, size_t c_in,
                                       const size_t *hw, size_t c_mid, size_t c_out,
                                       const mite_window2d *first, const mite_window2d *dw) {
    mite_window2d pw = {{1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}};
    mite_status st = mite_conv2d_geometry_init(&p->expand.geometry, n, c_in, hw, c_mid, 1, first);
    if (st == MITE_OK) {
        st = mite_conv2d_geometry_init(&p->depthwise.geometry, n, c_mid,
                                       p->expand.geometry.out_hw, c_mid, c_mid, dw);
    }
    if (st == MITE_OK) {
        st = mite_conv2d_geometry_init(&p->project.geometry, n, c_mid,
                                       p->depthwise.geometry.out_hw, c_out, 1, &pw);
    }
    return st;
}

/* A chain's fields: n c_in h w c_mid1 c_link c_mid2 c_out, the first convolution's window, the
 * two depthwise windows, six stages, x, (w, bias) x 6. Returns the status of the geometries
 * (meaningful only when the input was read whole). */
static mite_status rd_chain(mite_bottleneck_chain_int8_params *p,
                            mite_bottleneck_int8_weights wts[2], int8_t **x, size_t *x_len) {
    mite_window2d first, dw1, dw2, pw = {{1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}};
    size_t n, c_in, hw[2], c_mid1, c_link, c_mid2, c_out;
    mite_status st;
    n = rd_u();
    c_in = rd_u();
    hw[0] = rd_u();
    hw[1] = rd_u();
    c_mid1 = rd_u();
    c_link = rd_u();
    c_mid2 = rd_u();
    c_out = rd_u();
    rd_window(&first);
    rd_window(&dw1);
    rd_window(&dw2);
    rd_bottleneck_stage(&p->first.expand);
    rd_bottleneck_stage(&p->first.depthwise);
    rd_bottleneck_stage(&p->first.project);
    rd_bottleneck_stage(&p->second.expand);
    rd_bottleneck_stage(&p->second.depthwise);
    rd_bottleneck_stage(&p->second.project);
    *x = rd_i8s(x_len);
    rd_bottleneck_weights(&wts[0]);
    rd_bottleneck_weights(&wts[1]);
    if (bad_input) {
        return MITE_OK;
    }
    st = bottleneck_geometry(&p->first, n, c_in, hw, c_mid1, c_link, &first, &dw1);
    if (st == MITE_OK) {
        st = bottleneck_geometry(&p->second, n, c_link, p->first.project.geometry.out_hw,
                                 c_mid2, c_out, &pw, &dw2);
    }
    return st;
}

/* A chain's fields (rd_chain), out_len, scratch_len. */
static void op_bottleneck_chain_i8(void) {
    mite_bottleneck_chain_int8_params p;
    mite_bottleneck_int8_weights wts[2];
    size_t x_len, out_len, scratch_len;
    int8_t *x, *out, *scratch;
    mite_status st = rd_chain(&p, wts, &x, &x_len);
    out_len = rd_u();
    scratch_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    scratch = (int8_t *)zeros(scratch_len, 1);
    if (bad_input) {
        return;
    }
    if (st == MITE_OK) {
        st = mite_bottleneck_chain_int8(x, x_len, wts, out, out_len, scratch, scratch_len, &p);
    }
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

/* A chain's fields (rd_chain, x being the buffer), scratch_len; prints the whole buffer
 * after the call. */
static void op_bottleneck_chain_in_place_i8(void) {
    mite_bottleneck_chain_int8_params p;
    mite_bottleneck_int8_weights wts[2];
    size_t buf_len, scratch_len;
    int8_t *buf, *scratch;
    mite_status st = rd_chain(&p, wts, &buf, &buf_len);
    scratch_len = rd_u();
    scratch = (int8_t *)zeros(scratch_len, 1);
    if (bad_input) {
        return;
    }
    if (st == MITE_OK) {
        st = mite_bottleneck_chain_int8_in_place(buf, buf_len, wts, scratch, scratch_len, &p);
    }
    put_status(st);
    put_i8s(buf, buf_len);
    end_line();
}

static void op_linear_i8(void) {
    mite_linear_int8_params p;
    size_t n, k, m, x_len, w_len, b_len = 0, zp_len, out_len;
    const int8_t *x, *w;
    const int32_t *bias = NULL;
    int8_t *out;
    mite_status st;
    n = rd_u();
    k = rd_u();
    m = rd_u();
    p.x_zero_point = (int8_t)rd_i();
    p.w_zero_points = rd_i8s(&zp_len);
    p.w_zero_points_len = zp_len;
    rd_output_stage(&p.out);
    p.bias_add = (mite_bias_add)rd_u();
    x = rd_i8s(&x_len);
    w = rd_i8s(&w_len);
    if (rd_u()) {
        bias = rd_i32s(&b_len);
    }
    out_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_linear_geometry_init(&p.geometry, n, k, m);
    if (st == MITE_OK) {
        st = mite_linear_int8(x, x_len, w, w_len, bias, b_len, out, out_len, &p);
    }
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

static void op_add_i8(void) {
    mite_add_params p;
    size_t a_len, b_len, out_len;
    const int8_t *a, *b;
    int8_t *out;
    mite_status st;
    rd_quant(&p.a);
    rd_quant(&p.b);
    rd_quant(&p.out);
    rd_range(&p.range);
    p.rounding = (mite_rounding)rd_u();
    p.input_multipliers[0][0] = (int32_t)rd_i();
    p.input_multipliers[0][1] = (int32_t)rd_i();
    p.input_multipliers[1][0] = (int32_t)rd_i();
    p.input_multipliers[1][1] = (int32_t)rd_i();
    p.output_multiplier[0] = (int32_t)rd_i();
    p.output_multiplier[1] = (int32_t)rd_i();
    a = rd_i8s(&a_len);
    b = rd_i8s(&b_len);
    out_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_add_int8(a, a_len, b, b_len, out, out_len, &p);
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

static void op_avgpool_i8(void) {
    size_t dims[4], x_len, out_len;
    mite_window2d w;
    mite_act_range r;
    const int8_t *x;
    int8_t *out;
    mite_status st;
    rd_dims(dims);
    rd_window(&w);
    rd_range(&r);
    x = rd_i8s(&x_len);
    out_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_avg_pool_int8(x, x_len, dims, &w, r, out, out_len);
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

static void op_gavgpool_i8(void) {
    size_t dims[4], x_len, out_len;
    mite_rounding rounding;
    const int8_t *x;
    int8_t *out;
    mite_status st;
    rd_dims(dims);
    rounding = (mite_rounding)rd_u();
    x = rd_i8s(&x_len);
    out_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_global_avg_pool_int8(x, x_len, dims, rounding, out, out_len);
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

static void op_mean_i8(void) {
    size_t dims[4], x_len, out_len;
    mite_mean_params p;
    const int8_t *x;
    int8_t *out;
    mite_status st;
    rd_dims(dims);
    rd_quant(&p.input);
    rd_quant(&p.output);
    p.rounding = (mite_rounding)rd_u();
    p.real = rd_d();
    p.multiplier[0] = (int32_t)rd_i();
    p.multiplier[1] = (int32_t)rd_i();
    x = rd_i8s(&x_len);
    out_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_mean_int8(x, x_len, dims, out, out_len, &p);
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

static void rd_per_axis(mite_per_axis *p) {
    p->scales = rd_f32s(&p->scales_len);
    p->zero_points = rd_i8s(&p->zero_points_len);
    p->inner = rd_u();
}

static void op_quantize(void) {
    mite_per_axis p;
    size_t x_len, out_len;
    const float *x;
    int8_t *out;
    mite_status st;
    rd_per_axis(&p);
    x = rd_f32s(&x_len);
    out_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_quantize(x, x_len, out, out_len, &p);
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

static void op_dequantize(void) {
    mite_per_axis p;
    size_t x_len, out_len;
    const int8_t *x;
    float *out;
    mite_status st;
    rd_per_axis(&p);
    x = rd_i8s(&x_len);
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = mite_dequantize(x, x_len, out, out_len, &p);
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

static void op_requantize(void) {
    mite_quant_params from, to;
    size_t x_len, out_len;
    const int8_t *x;
    int8_t *out;
    mite_status st;
    rd_quant(&from);
    rd_quant(&to);
    x = rd_i8s(&x_len);
    out_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    if (bad_input) {
        return;
    }
    st = mite_requantize(x, x_len, out, out_len, from, to);
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

/* Float convolution family: which = 0 forward, 1 input grad, 2 weight grad, 3 weight slice,
 * 4 bias grad. Fields: geometry, [slice start len], a, b (forward: x w; input: dy w;
 * weight: x dy; slice: x dy; bias: dy), [forward: optional bias], out_len. */
static void op_conv_f32(int which) {
    conv_fields f;
    mite_conv2d_geometry g;
    size_t a_len = 0, b_len = 0, bias_len = 0, out_len, s_start = 0, s_len = 0;
    const float *a, *b = NULL, *bias = NULL;
    float *out;
    mite_status st;
    rd_conv_fields(&f);
    if (which == 3) {
        s_start = rd_u();
        s_len = rd_u();
    }
    a = rd_f32s(&a_len);
    if (which != 4) {
        b = rd_f32s(&b_len);
    }
    if (which == 0 && rd_u()) {
        bias = rd_f32s(&bias_len);
    }
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = init_conv(&g, &f);
    if (st == MITE_OK) {
        switch (which) {
        case 0:
            st = mite_conv2d_f32(a, a_len, b, b_len, bias, bias_len, out, out_len, &g);
            break;
        case 1:
            st = mite_conv2d_backward_input_f32(a, a_len, b, b_len, out, out_len, &g);
            break;
        case 2:
            st = mite_conv2d_backward_weight_f32(a, a_len, b, b_len, out, out_len, &g);
            break;
        case 3:
            st = mite_conv2d_backward_weight_slice_f32(a, a_len, b, b_len, out, out_len, &g,
                                                       s_start, s_len);
            break;
        default:
            st = mite_conv2d_backward_bias_f32(a, a_len, out, out_len, &g);
            break;
        }
    }
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

/* A split weight: kept, then (after the caller's reads) the trained and frozen parts. */
static void rd_split_parts(mite_split_weight *w) {
    w->trained = rd_i8s(&w->trained_len);
    w->frozen = rd_i8s(&w->frozen_len);
}

/* int8 convolution over a split weight: as conv_i8, then kept, x, trained, frozen, bias flag
 * (+ bias), out_len, scratch_len, gather_len. */
static void op_conv_i8_split(void) {
    conv_fields f;
    mite_conv2d_int8_params p;
    mite_split_weight sw;
    size_t x_len, b_len = 0, zp_len, out_len, scratch_len, gather_len;
    const int8_t *x;
    const int32_t *bias = NULL;
    int8_t *out, *gather;
    int32_t *scratch;
    mite_status st;
    rd_conv_fields(&f);
    p.x_zero_point = (int8_t)rd_i();
    p.w_zero_points = rd_i8s(&zp_len);
    p.w_zero_points_len = zp_len;
    rd_output_stage(&p.out);
    p.bias_add = (mite_bias_add)rd_u();
    sw.kept = rd_u();
    x = rd_i8s(&x_len);
    rd_split_parts(&sw);
    if (rd_u()) {
        bias = rd_i32s(&b_len);
    }
    out_len = rd_u();
    scratch_len = rd_u();
    gather_len = rd_u();
    out = (int8_t *)zeros(out_len, 1);
    scratch = (int32_t *)zeros(scratch_len, 4);
    gather = (int8_t *)zeros(gather_len, 1);
    if (bad_input) {
        return;
    }
    st = init_conv(&p.geometry, &f);
    if (st == MITE_OK) {
        st = mite_conv2d_int8_split(x, x_len, &sw, bias, b_len, out, out_len, scratch,
                                    scratch_len, gather, gather_len, &p);
    }
    put_status(st);
    put_i8s(out, out_len);
    end_line();
}

/* Input gradient over a split int8 weight: geometry, per-axis tables, kept, dy, trained,
 * frozen, out_len. */
static void op_conv_bwd_in_i8w_split(void) {
    conv_fields f;
    mite_conv2d_geometry g;
    mite_per_axis p;
    mite_split_weight sw;
    size_t dy_len, out_len;
    const float *dy;
    float *out;
    mite_status st;
    rd_conv_fields(&f);
    rd_per_axis(&p);
    sw.kept = rd_u();
    dy = rd_f32s(&dy_len);
    rd_split_parts(&sw);
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = init_conv(&g, &f);
    if (st == MITE_OK) {
        st = mite_conv2d_backward_input_int8w_split(dy, dy_len, &sw, &p, out, out_len, &g);
    }
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

/* Input gradient over an int8 weight: geometry, per-axis tables, dy, w (i8), out_len. */
static void op_conv_bwd_in_i8w(void) {
    conv_fields f;
    mite_conv2d_geometry g;
    mite_per_axis p;
    size_t dy_len, w_len, out_len;
    const float *dy;
    const int8_t *w;
    float *out;
    mite_status st;
    rd_conv_fields(&f);
    rd_per_axis(&p);
    dy = rd_f32s(&dy_len);
    w = rd_i8s(&w_len);
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = init_conv(&g, &f);
    if (st == MITE_OK) {
        st = mite_conv2d_backward_input_int8w(dy, dy_len, w, w_len, &p, out, out_len, &g);
    }
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

/* Input gradient over an int8 weight in place: geometry, per-axis tables, buf (dy), w (i8),
 * scratch_len; prints buf after. */
static void op_conv_bwd_in_i8w_inplace(void) {
    conv_fields f;
    mite_conv2d_geometry g;
    mite_per_axis p;
    size_t buf_len, w_len, scratch_len;
    const float *dy;
    const int8_t *w;
    float *buf, *scratch;
    mite_status st;
    rd_conv_fields(&f);
    rd_per_axis(&p);
    dy = rd_f32s(&buf_len);
    w = rd_i8s(&w_len);
    scratch_len = rd_u();
    buf = (float *)zeros(buf_len, 4);
    scratch = (float *)zeros(scratch_len, 4);
    if (bad_input) {
        return;
    }
    memcpy(buf, dy, buf_len * sizeof(float));
    st = init_conv(&g, &f);
    if (st == MITE_OK) {
        st = mite_conv2d_backward_input_int8w_inplace(buf, buf_len, w, w_len, &p, scratch,
                                                      scratch_len, &g);
    }
    put_status(st);
    put_f32s(buf, buf_len);
    end_line();
}

/* Float linear family: which = 0 forward (x w [bias]), 1 input grad (dy w), 2 weight grad
 * (x dy), 3 bias grad (dy). */
static void op_linear_f32(int which) {
    mite_linear_geometry g;
    size_t n, k, m, a_len = 0, b_len = 0, bias_len = 0, out_len;
    const float *a, *b = NULL, *bias = NULL;
    float *out;
    mite_status st;
    n = rd_u();
    k = rd_u();
    m = rd_u();
    a = rd_f32s(&a_len);
    if (which != 3) {
        b = rd_f32s(&b_len);
    }
    if (which == 0 && rd_u()) {
        bias = rd_f32s(&bias_len);
    }
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = mite_linear_geometry_init(&g, n, k, m);
    if (st == MITE_OK) {
        switch (which) {
        case 0:
            st = mite_linear_f32(a, a_len, b, b_len, bias, bias_len, out, out_len, &g);
            break;
        case 1:
            st = mite_linear_backward_input_f32(a, a_len, b, b_len, out, out_len, &g);
            break;
        case 2:
            st = mite_linear_backward_weight_f32(a, a_len, b, b_len, out, out_len, &g);
            break;
        default:
            st = mite_linear_backward_bias_f32(a, a_len, out, out_len, &g);
            break;
        }
    }
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

static void op_avgpool_bwd(void) {
    size_t dims[4], dy_len, out_len;
    mite_window2d w;
    int include_pad;
    const float *dy;
    float *out;
    mite_status st;
    rd_dims(dims);
    rd_window(&w);
    include_pad = (int)rd_u();
    dy = rd_f32s(&dy_len);
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = mite_avg_pool_backward_f32(dy, dy_len, dims, &w, include_pad, out, out_len);
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

static void op_gavgpool_bwd(void) {
    size_t dims[4], dy_len, out_len;
    const float *dy;
    float *out;
    mite_status st;
    rd_dims(dims);
    dy = rd_f32s(&dy_len);
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = mite_global_avg_pool_backward_f32(dy, dy_len, dims, out, out_len);
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

static void op_make_mask(void) {
    float min, max;
    size_t x_len, out_len;
    const float *x;
    uint32_t *out;
    mite_status st;
    min = rd_f();
    max = rd_f();
    x = rd_f32s(&x_len);
    out_len = rd_u();
    out = (uint32_t *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = mite_make_mask_f32(x, x_len, out, out_len, min, max);
    put_status(st);
    put_u32s(out, out_len);
    end_line();
}

static void op_apply_mask(void) {
    size_t dy_len, mask_len, out_len;
    const float *dy;
    const uint32_t *mask;
    float *out;
    mite_status st;
    dy = rd_f32s(&dy_len);
    mask = rd_u32s(&mask_len);
    out_len = rd_u();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = mite_apply_mask_f32(dy, dy_len, mask, mask_len, out, out_len);
    put_status(st);
    put_f32s(out, out_len);
    end_line();
}

static void op_sce(int backward) {
    size_t n, c, logits_len, labels_len, out_len;
    const float *logits;
    const int32_t *labels;
    float grad_loss = 0.0f, loss = 0.0f;
    float *out;
    mite_status st;
    n = rd_u();
    c = rd_u();
    logits = rd_f32s(&logits_len);
    labels = rd_i32s(&labels_len);
    if (backward) {
        grad_loss = rd_f();
    }
    out_len = rd_u(); /* scratch (forward) or gradient (backward) */
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    if (backward) {
        st = mite_softmax_cross_entropy_backward_f32(logits, logits_len, labels, labels_len,
                                                     grad_loss, out, out_len, n, c);
        put_status(st);
        put_f32s(out, out_len);
    } else {
        st = mite_softmax_cross_entropy_f32(logits, logits_len, labels, labels_len, out, out_len,
                                            n, c, &loss);
        put_status(st);
        put_f32(loss);
    }
    end_line();
}

static void op_accumulate(void) {
    size_t g_len, acc_len, out_len;
    const float *g;
    float *acc, *out;
    int64_t step;
    uint32_t every;
    int ready = 0;
    mite_status st;
    g = rd_f32s(&g_len);
    acc = rd_f32s(&acc_len);
    out_len = rd_u();
    step = rd_i();
    every = (uint32_t)rd_u64();
    out = (float *)zeros(out_len, 4);
    if (bad_input) {
        return;
    }
    st = mite_accumulate(g, g_len, acc, acc_len, out, out_len, step, every, &ready);
    put_status(st);
    put_int(ready);
    put_f32s(acc, acc_len);
    put_f32s(out, out_len);
    end_line();
}

static void rd_sgd(mite_sgd_params *p) {
    p->eta = rd_f();
    p->momentum = rd_f();
    p->weight_decay = rd_f();
    p->qas = (int)rd_u();
    p->rounding.stochastic = (int)rd_u();
    p->rounding.seed = rd_i();
    p->rounding.step = rd_i();
}

/* kind 0: f32, 1: i8, 2: i32. Fields: sgd params, [channel quant], param, grad, [momentum]. */
static void op_sgd(int kind) {
    mite_sgd_params p;
    mite_channel_quant cq;
    size_t q_len = 0, g_len, m_len = 0, s_len = 0, z_len = 0;
    float *wf = NULL, *m = NULL;
    int8_t *w8 = NULL;
    int32_t *w32 = NULL;
    const float *g;
    mite_status st;
    rd_sgd(&p);
    if (kind != 0) {
        cq.scales = rd_f32s(&s_len);
        cq.zero_points = rd_i32s(&z_len);
        cq.channels = s_len;
        cq.inner = rd_u();
        if (s_len == 0 || s_len != z_len) {
            bad_input = 1;
        }
    }
    if (kind == 0) {
        wf = rd_f32s(&q_len);
    } else if (kind == 1) {
        w8 = rd_i8s(&q_len);
    } else {
        w32 = rd_i32s(&q_len);
    }
    g = rd_f32s(&g_len);
    if (rd_u()) {
        m = rd_f32s(&m_len);
    }
    if (bad_input) {
        return;
    }
    if (kind == 0) {
        st = mite_sgd_f32(wf, q_len, g, g_len, m, m_len, &p);
        put_status(st);
        put_f32s(wf, q_len);
    } else if (kind == 1) {
        st = mite_sgd_i8(w8, q_len, g, g_len, m, m_len, &cq, &p);
        put_status(st);
        put_i8s(w8, q_len);
    } else {
        st = mite_sgd_i32(w32, q_len, g, g_len, m, m_len, &cq, &p);
        put_status(st);
        put_i32s(w32, q_len);
    }
    if (m != NULL) {
        put_f32s(m, m_len);
    }
    end_line();
}

/* Fused weight gradient + update; int8: 1 for an i8 weight. Fields: geometry, sgd params,
 * [channel quant], has_view [outer channels inner start count], x, dy, param, [momentum],
 * scratch_len. */
static void op_conv_weight_sgd(int int8) {
    conv_fields f;
    mite_conv2d_geometry g;
    mite_sgd_params p;
    mite_channel_quant cq;
    mite_slice_view view;
    int has_view;
    size_t x_len = 0, dy_len = 0, q_len = 0, m_len = 0, s_len = 0, z_len = 0, scratch_len;
    const float *x, *dy;
    float *wf = NULL, *m = NULL, *scratch;
    int8_t *w8 = NULL;
    mite_status st;
    rd_conv_fields(&f);
    rd_sgd(&p);
    if (int8) {
        cq.scales = rd_f32s(&s_len);
        cq.zero_points = rd_i32s(&z_len);
        cq.channels = s_len;
        cq.inner = rd_u();
        if (s_len == 0 || s_len != z_len) {
            bad_input = 1;
        }
    }
    has_view = (int)rd_u();
    if (has_view) {
        view.outer = rd_u();
        view.channels = rd_u();
        view.inner = rd_u();
        view.start = rd_u();
        view.count = rd_u();
    }
    x = rd_f32s(&x_len);
    dy = rd_f32s(&dy_len);
    if (int8) {
        w8 = rd_i8s(&q_len);
    } else {
        wf = rd_f32s(&q_len);
    }
    if (rd_u()) {
        m = rd_f32s(&m_len);
    }
    scratch_len = rd_u();
    scratch = (float *)zeros(scratch_len, 4);
    if (bad_input) {
        return;
    }
    st = init_conv(&g, &f);
    if (st == MITE_OK && int8) {
        st = mite_conv2d_weight_sgd_i8(x, x_len, dy, dy_len, &g, has_view ? &view : NULL, w8,
                                       q_len, m, m_len, &cq, &p, scratch, scratch_len);
    } else if (st == MITE_OK) {
        st = mite_conv2d_weight_sgd_f32(x, x_len, dy, dy_len, &g, has_view ? &view : NULL, wf,
                                        q_len, m, m_len, &p, scratch, scratch_len);
    }
    put_status(st);
    if (int8) {
        put_i8s(w8, q_len);
    } else {
        put_f32s(wf, q_len);
    }
    if (m != NULL) {
        put_f32s(m, m_len);
    }
    end_line();
}

/* Streamed bottleneck backward: c_in mid c_out h w k stride, the three weights' per-axis
 * tables, flags (dx, db_depthwise, db_expand, update, split), kept, dy, w_project,
 * mask_depthwise, w_depthwise, mask_expand, w_expand (split: its trained slice), [split: the
 * frozen remainder], [update: sgd params, channel quant, x, x scale and zero point, momentum],
 * scratch_len; prints the present results, w_expand and the momentum. */
static void op_bottleneck_backward(void) {
    mite_bottleneck_backward_params p;
    mite_bottleneck_backward_update u;
    mite_bottleneck_backward_grads g;
    mite_per_axis pp, pd, pe, px;
    mite_sgd_params sp;
    mite_channel_quant cq;
    size_t c_in, mid, c_out, h, w, k, stride, dy_len, wp_len, md_len, wd_len, me_len, we_len;
    size_t s_len = 0, z_len = 0, x_len = 0, m_len = 0, wf_len = 0, scratch_len, kept;
    int dx, db_d, db_e, update, split;
    const float *dy;
    const int8_t *wp, *wd, *x = NULL;
    const uint32_t *md, *me;
    int8_t *we, *wf = NULL;
    const int8_t *frozen;
    size_t frozen_len;
    float *m = NULL, *scratch;
    static const float one = 1.0f;
    static const int8_t zero = 0;
    mite_status st;
    c_in = rd_u();
    mid = rd_u();
    c_out = rd_u();
    h = rd_u();
    w = rd_u();
    k = rd_u();
    stride = rd_u();
    rd_per_axis(&pp);
    rd_per_axis(&pd);
    rd_per_axis(&pe);
    dx = (int)rd_u();
    db_d = (int)rd_u();
    db_e = (int)rd_u();
    update = (int)rd_u();
    split = (int)rd_u();
    kept = rd_u();
    dy = rd_f32s(&dy_len);
    wp = rd_i8s(&wp_len);
    md = rd_u32s(&md_len);
    wd = rd_i8s(&wd_len);
    me = rd_u32s(&me_len);
    we = rd_i8s(&we_len);
    if (split) {
        wf = rd_i8s(&wf_len);
    }
    if (update) {
        rd_sgd(&sp);
        cq.scales = rd_f32s(&s_len);
        cq.zero_points = rd_i32s(&z_len);
        cq.channels = s_len;
        cq.inner = rd_u();
        x = rd_i8s(&x_len);
        rd_per_axis(&px);
        if (rd_u()) {
            m = rd_f32s(&m_len);
        }
        if (s_len == 0 || s_len != z_len) {
            bad_input = 1;
        }
    }
    scratch_len = rd_u();
    scratch = (float *)zeros(scratch_len, 4);
    g.dx_len = c_in * h * w;
    g.dx = dx ? (float *)zeros(g.dx_len, 4) : NULL;
    g.db_depthwise_len = g.db_expand_len = mid;
    g.db_depthwise = db_d ? (float *)zeros(mid, 4) : NULL;
    g.db_expand = db_e ? (float *)zeros(mid, 4) : NULL;
    if (bad_input) {
        return;
    }
    memset(&p, 0, sizeof p);
    p.expand.n = p.depthwise.n = p.project.n = 1u;
    p.expand.c_in = c_in;
    p.expand.c_out = p.depthwise.c_in = p.depthwise.c_out = p.depthwise.groups = mid;
    p.expand.groups = p.project.groups = 1u;
    p.project.c_in = mid;
    p.project.c_out = c_out;
    p.expand.in_hw[0] = p.expand.out_hw[0] = p.depthwise.in_hw[0] = h;
    p.expand.in_hw[1] = p.expand.out_hw[1] = p.depthwise.in_hw[1] = w;
    p.expand.window.kernel[0] = p.expand.window.kernel[1] = 1u;
    p.expand.window.strides[0] = p.expand.window.strides[1] = 1u;
    p.expand.window.dilations[0] = p.expand.window.dilations[1] = 1u;
    p.project.window = p.expand.window;
    p.depthwise.window = p.expand.window;
    p.depthwise.window.kernel[0] = p.depthwise.window.kernel[1] = k;
    p.depthwise.window.strides[0] = p.depthwise.window.strides[1] = stride;
    p.depthwise.window.pads[0] = p.depthwise.window.pads[1] = k / 2u;
    p.depthwise.window.pads[2] = p.depthwise.window.pads[3] = k / 2u;
    p.depthwise.out_hw[0] = (h + 2u * (k / 2u) - k) / stride + 1u;
    p.depthwise.out_hw[1] = (w + 2u * (k / 2u) - k) / stride + 1u;
    p.project.in_hw[0] = p.project.out_hw[0] = p.depthwise.out_hw[0];
    p.project.in_hw[1] = p.project.out_hw[1] = p.depthwise.out_hw[1];
    p.project_w = &pp;
    p.depthwise_w = &pd;
    p.expand_w = dx ? &pe : NULL;
    p.kept = kept;
    if (!update) {
        px.scales = &one;
        px.scales_len = 1u;
        px.zero_points = &zero;
        px.zero_points_len = 1u;
        px.inner = x_len;
    }
    u.x = x;
    u.x_len = x_len;
    u.x_quant = &px;
    u.w = we;
    u.w_len = we_len;
    u.m = m;
    u.m_len = m_len;
    u.cq = &cq;
    u.sgd = &sp;
    /* The frozen remainder of a split weight, else the frozen weight dx reads alone. */
    frozen = split ? wf : (update || !dx ? NULL : we);
    frozen_len = split ? wf_len : (update || !dx ? 0u : we_len);
    st = mite_bottleneck_backward(dy, dy_len, wp, wp_len, md, md_len, wd, wd_len, me, me_len,
                                  frozen, frozen_len, update ? &u : NULL, &g, scratch, scratch_len,
                                  &p);
    put_status(st);
    if (dx) {
        put_f32s(g.dx, g.dx_len);
    }
    if (db_d) {
        put_f32s(g.db_depthwise, mid);
    }
    if (db_e) {
        put_f32s(g.db_expand, mid);
    }
    put_i8s(we, we_len);
    if (m != NULL) {
        put_f32s(m, m_len);
    }
    end_line();
}

/* Scalar fixed-point functions on (x, multiplier, shift, scale). */
static void op_fixed(void) {
    int32_t x = (int32_t)rd_i(), mul = (int32_t)rd_i(), shift = (int32_t)rd_i();
    double scale = rd_d();
    if (bad_input) {
        return;
    }
    put_status(MITE_OK);
    put_int(mite_saturating_rounding_doubling_high_mul(x, mul));
    put_int(mite_rounding_divide_by_pot(x, shift));
    put_int(mite_multiply_by_quantized_multiplier(x, mul, shift));
    put_int(mite_multiply_by_quantized_multiplier_single_rounding(x, mul, shift));
    put_int(mite_requantize_float_scale(x, scale));
    end_line();
}

/* The portable exp and ln of each value. */
static void op_exp_ln(void) {
    size_t n, i;
    const float *x = rd_f32s(&n);
    if (bad_input) {
        return;
    }
    put_status(MITE_OK);
    for (i = 0; i < n; i++) {
        put_f32(mite_exp_f32(x[i]));
        put_f32(mite_ln_f32(x[i]));
    }
    end_line();
}

long harness_run(void) {
    char op[32];
    long cases = 0;
    while (read_token(op, sizeof op)) {
        bad_input = 0;
        if (strcmp(op, "bottleneck_i8") == 0) {
            op_bottleneck_i8();
        } else if (strcmp(op, "bottleneck_chain_i8") == 0) {
            op_bottleneck_chain_i8();
        } else if (strcmp(op, "bottleneck_chain_in_place_i8") == 0) {
            op_bottleneck_chain_in_place_i8();
        } else if (strcmp(op, "conv_i8") == 0) {
            op_conv_i8();
        } else if (strcmp(op, "linear_i8") == 0) {
            op_linear_i8();
        } else if (strcmp(op, "add_i8") == 0) {
            op_add_i8();
        } else if (strcmp(op, "avgpool_i8") == 0) {
            op_avgpool_i8();
        } else if (strcmp(op, "gavgpool_i8") == 0) {
            op_gavgpool_i8();
        } else if (strcmp(op, "mean_i8") == 0) {
            op_mean_i8();
        } else if (strcmp(op, "quantize") == 0) {
            op_quantize();
        } else if (strcmp(op, "dequantize") == 0) {
            op_dequantize();
        } else if (strcmp(op, "requantize") == 0) {
            op_requantize();
        } else if (strcmp(op, "conv_f32") == 0) {
            op_conv_f32(0);
        } else if (strcmp(op, "conv_bwd_in") == 0) {
            op_conv_f32(1);
        } else if (strcmp(op, "conv_bwd_w") == 0) {
            op_conv_f32(2);
        } else if (strcmp(op, "conv_bwd_w_slice") == 0) {
            op_conv_f32(3);
        } else if (strcmp(op, "conv_bwd_b") == 0) {
            op_conv_f32(4);
        } else if (strcmp(op, "conv_bwd_in_i8w") == 0) {
            op_conv_bwd_in_i8w();
        } else if (strcmp(op, "conv_bwd_in_i8w_inplace") == 0) {
            op_conv_bwd_in_i8w_inplace();
        } else if (strcmp(op, "linear_f32") == 0) {
            op_linear_f32(0);
        } else if (strcmp(op, "linear_bwd_in") == 0) {
            op_linear_f32(1);
        } else if (strcmp(op, "linear_bwd_w") == 0) {
            op_linear_f32(2);
        } else if (strcmp(op, "linear_bwd_b") == 0) {
            op_linear_f32(3);
        } else if (strcmp(op, "avgpool_bwd") == 0) {
            op_avgpool_bwd();
        } else if (strcmp(op, "gavgpool_bwd") == 0) {
            op_gavgpool_bwd();
        } else if (strcmp(op, "make_mask") == 0) {
            op_make_mask();
        } else if (strcmp(op, "apply_mask") == 0) {
            op_apply_mask();
        } else if (strcmp(op, "sce") == 0) {
            op_sce(0);
        } else if (strcmp(op, "sce_bwd") == 0) {
            op_sce(1);
        } else if (strcmp(op, "accumulate") == 0) {
            op_accumulate();
        } else if (strcmp(op, "sgd_f32") == 0) {
            op_sgd(0);
        } else if (strcmp(op, "sgd_i8") == 0) {
            op_sgd(1);
        } else if (strcmp(op, "sgd_i32") == 0) {
            op_sgd(2);
        } else if (strcmp(op, "conv_w_sgd_f32") == 0) {
            op_conv_weight_sgd(0);
        } else if (strcmp(op, "conv_w_sgd_i8") == 0) {
            op_conv_weight_sgd(1);
        } else if (strcmp(op, "bottleneck_bwd") == 0) {
            op_bottleneck_backward();
        } else if (strcmp(op, "fixed") == 0) {
            op_fixed();
        } else if (strcmp(op, "exp_ln") == 0) {
            op_exp_ln();
        } else if (strcmp(op, "conv_i8_split") == 0) {
            op_conv_i8_split();
        } else if (strcmp(op, "conv_bwd_in_i8w_split") == 0) {
            op_conv_bwd_in_i8w_split();
        } else {
            bad_input = 1;
        }
        hio_release();
        if (bad_input) {
            put("bad-input ");
            put(op);
            put("\n");
            return -1;
        }
        cases++;
    }
    return cases;
}
