/*
 * mite_internal.h - helpers shared by the kernel sources (not part of the API).
 */
#ifndef MITE_INTERNAL_H
#define MITE_INTERNAL_H

#include "mite_kernels.h"

/* Record an error and return its code. */
mite_status mite_fail(mite_status code, const char *message, size_t expected, size_t found,
                      size_t index);
/* Length check (Rust `check_len`). */
mite_status mite_check_len(const char *what, size_t expected, size_t found);
/* Scratch check (Rust `check_scratch`). */
mite_status mite_check_scratch(size_t needed, size_t found);
/* Product of dims, or an error when it overflows size_t (Rust `checked_product`). */
mite_status mite_checked_product(const size_t *dims, size_t count, size_t *product);
/* Checked a * b (returns 0 on overflow). */
int mite_mul_ok(size_t a, size_t b, size_t *out);

/* The two axes of a window over in_hw, or Geometry error. */
mite_status mite_window_axes(const mite_window2d *w, const size_t in_hw[2],
                             mite_window_axis axes[2]);
/* The axes of a validated convolution geometry. */
void mite_conv_axes(const mite_conv2d_geometry *g, mite_window_axis axes[2]);
/* Outputs o in [*lo, *hi) for which tap k reads real input. */
void mite_axis_valid_outputs(const mite_window_axis *a, size_t k, size_t *lo, size_t *hi);
/* Taps k in [*lo, *hi) of output o that read real input. */
void mite_axis_valid_taps(const mite_window_axis *a, size_t o, size_t *lo, size_t *hi);
/* The input index read by tap k at output o. */
size_t mite_axis_input_index(const mite_window_axis *a, size_t o, size_t k);

/* Iterator over (tap, output row) pairs where the tap reads real input (Rust
 * `for_each_tap_row`): taps in row-major order, rows ascending. */
typedef struct {
    mite_window_axis ay, ax;
    size_t ki, kj;
    size_t oy, oy_hi;
    size_t ox_lo, ox_hi;
    int started;
    /* outputs of the current step */
    size_t row_oy, row_iy, row_ox_lo, row_ox_hi, row_ix0, row_tap;
} mite_tap_rows;

void mite_tap_rows_init(mite_tap_rows *it, const mite_window_axis axes[2]);
/* dw[tap] += sum over the tap's rows of dy * x for one (input plane, output plane) pair (Rust
 * `weight_taps`). */
void mite_weight_taps(const float *xp, const float *dyp, float *dw,
                      const mite_window_axis axes[2]);
/* Advance; returns 0 when done. */
int mite_tap_rows_next(mite_tap_rows *it);

/* Wrapping and saturating i32 arithmetic without undefined behaviour. */
static inline int32_t mite_wrap_i32(uint32_t v) {
    return v <= (uint32_t)INT32_MAX ? (int32_t)v : (int32_t)(v - 2147483648u) - INT32_MAX - 1;
}
static inline int32_t mite_wadd(int32_t a, int32_t b) {
    return mite_wrap_i32((uint32_t)a + (uint32_t)b);
}
static inline int32_t mite_wmul(int32_t a, int32_t b) {
    return mite_wrap_i32((uint32_t)a * (uint32_t)b);
}
static inline int32_t mite_sat_i32(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}
static inline int32_t mite_sadd(int32_t a, int32_t b) {
    return mite_sat_i32((int64_t)a + (int64_t)b);
}
/* Rust `f64 as i32` / `as i64`: saturating, NaN to 0. */
int32_t mite_f64_to_i32(double x);
int64_t mite_f64_to_i64(double x);
/* Rust `ActRange::clamp`. */
static inline int8_t mite_clamp_act(mite_act_range r, int32_t v) {
    return (int8_t)(v < r.min ? r.min : (v > r.max ? r.max : v));
}
mite_status mite_act_range_check(mite_act_range r);
mite_status mite_scale_check(float scale);

/* Scale and zero point of element i of a per-axis quantized tensor (Rust `PerAxis::of`). */
void mite_per_axis_of(const mite_per_axis *p, size_t i, float *s, int8_t *z);
mite_status mite_output_stage_check(const mite_output_stage *s, size_t channels);
int8_t mite_output_stage_finish(const mite_output_stage *s, int32_t acc, size_t channel);
mite_status mite_check_zero_points(size_t len, size_t channels);
int32_t mite_zero_point_of(const int8_t *zps, size_t len, size_t c);
int32_t mite_rounding_multiply(mite_rounding r, int32_t x, int32_t multiplier, int32_t shift);
size_t mite_div_ceil(size_t a, size_t b);

#endif /* MITE_INTERNAL_H */
