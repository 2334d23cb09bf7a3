/*
 * mite_kernels.h - portable C99 kernels of mite's training programs.
 *
 * A second, independent implementation of the Rust crate `mite-kernels` (backends/kernels),
 * held bit-exact against it by mite-c's parity tests. Every kernel mirrors the Rust kernel of the
 * same name: same arguments (a slice is a pointer and a length), same checks in the same order,
 * same loop order, so that float results have the same bits when compiled with
 * `-ffp-contract=off` (no fused multiply-add) on an IEEE target without excess precision.
 * The softmax cross-entropy uses the portable mite_exp_f32 / mite_ln_f32 (mite-kernels'
 * PortableMath), not the C library's, so it too is bit-exact on every target.
 *
 * No allocation, no global state except the detail of the last error. No intrinsics except
 * the optional Arm DSP path: on a core with __ARM_FEATURE_DSP (Cortex-M4, M7) the int8
 * pointwise multiply-accumulate loops use ACLE SIMD32 intrinsics (<arm_acle.h>, SMLAD), with
 * bit-identical results (see mite_internal.h); define MITE_NO_ARM_DSP to build the portable
 * loops there too. Every other target always builds the portable loops.
 * Tensors are dense, row-major, NCHW. Padding is [top, left, bottom, right] (ONNX order).
 * Parameters (requantization multipliers and shifts, geometry) are computed on the host by
 * mite's compiler (the Rust constructors) and given to the kernels as plain structs.
 */
#ifndef MITE_KERNELS_H
#define MITE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

/** Result of a kernel; mirrors Rust's `KernelError` variants (0 = success). */
typedef enum {
    MITE_OK = 0,
    MITE_ERR_LENGTH = 1,       /* a buffer does not have the length its geometry implies */
    MITE_ERR_SCRATCH = 2,      /* a scratch buffer is too short */
    MITE_ERR_GEOMETRY = 3,     /* an inconsistent geometry (message says how) */
    MITE_ERR_PARAM = 4,        /* a parameter out of its domain (message says which) */
    MITE_ERR_EMPTY_WINDOW = 5, /* a pooling window lies entirely in the padding */
    MITE_ERR_NAN_UPDATE = 6    /* an integer parameter update is NaN (at `index`) */
} mite_status;

/** The detail of the last error a kernel returned. */
typedef struct {
    mite_status code;
    const char *message; /* Length: the buffer; Geometry / Param: the reason; else "" */
    size_t expected;     /* Length: expected elements; Scratch: elements needed */
    size_t found;        /* Length / Scratch: elements given */
    size_t index;        /* NanUpdate: row-major element index */
} mite_error;

/** The detail of the last error (not reentrant: one kernel at a time). */
const mite_error *mite_last_error(void);

/* ---------------------------------------------------------------- geometry */

/** The spatial parameters of a 2-D convolution or pooling window. */
typedef struct {
    size_t kernel[2];    /* kh, kw */
    size_t strides[2];   /* sh, sw */
    size_t pads[4];      /* top, left, bottom, right */
    size_t dilations[2]; /* dh, dw */
} mite_window2d;

/** One validated spatial axis of a window. */
typedef struct {
    size_t in_len, out_len, kernel, stride, dilation, pad_begin;
} mite_window_axis;

/** Output size of `w` over an input of size in_hw; returns 0 when the window does not fit. */
int mite_window2d_output_size(const mite_window2d *w, const size_t in_hw[2], size_t out_hw[2]);

/** A validated grouped 2-D convolution geometry; build it with mite_conv2d_geometry_init. */
typedef struct {
    size_t n, c_in, in_hw[2], c_out, groups;
    mite_window2d window;
    size_t out_hw[2];
} mite_conv2d_geometry;

/** Checks and builds a convolution geometry (Rust `Conv2dGeometry::new`). */
mite_status mite_conv2d_geometry_init(mite_conv2d_geometry *g, size_t n, size_t c_in,
                                      const size_t in_hw[2], size_t c_out, size_t groups,
                                      const mite_window2d *window);

/** A fully connected geometry [batch, in] x [out, in]^T; build with mite_linear_geometry_init. */
typedef struct {
    size_t batch, in_features, out_features;
} mite_linear_geometry;

/** Checks (no buffer size overflows) and builds a linear geometry. */
mite_status mite_linear_geometry_init(mite_linear_geometry *g, size_t batch, size_t in_features,
                                      size_t out_features);

/* ---------------------------------------------------------------- requantization */

/** How an i32 accumulator is mapped back to int8 (Rust `Rounding`). */
typedef enum {
    MITE_ROUNDING_DOUBLE = 0,      /* TFLite's two roundings (gemmlowp) */
    MITE_ROUNDING_SINGLE = 1,      /* TFLite's single rounding */
    MITE_ROUNDING_FLOAT_SCALE = 2, /* the paper's simulation: round(acc * scale) in f64 */
    MITE_ROUNDING_ONNXRUNTIME = 3  /* onnxruntime's fused kernels: f32 multiply */
} mite_rounding;

/** Scale and zero point of an int8 tensor: real = scale * (q - zero_point). */
typedef struct {
    float scale;
    int8_t zero_point;
} mite_quant_params;

/** A clamp on int8 outputs (a fused ReLU / ReLU6). */
typedef struct {
    int8_t min, max;
} mite_act_range;

/** Per-tensor (channels = 1) or per-channel requantization of accumulators (Rust `Requant`). */
typedef struct {
    mite_rounding rounding;
    size_t channels;            /* length of the three tables, >= 1 */
    const double *scales;       /* effective scales (FloatScale / OnnxRuntime) */
    const int32_t *multipliers; /* fixed-point multipliers (Double / Single) */
    const int32_t *shifts;      /* their shifts */
} mite_requant;

/** Requantize, add the output zero point, clamp (Rust `OutputStage`). */
typedef struct {
    mite_requant requant;
    int8_t zero_point;
    mite_act_range range;
} mite_output_stage;

/** How the bias is added to the accumulator (Rust `BiasAdd`). */
typedef enum {
    MITE_BIAS_SATURATING = 0,
    MITE_BIAS_WRAPPING = 1
} mite_bias_add;

/** Fixed-point helpers (Rust `fixed_point`), exposed for tests and generated code. */
int32_t mite_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
/** Rounding (half away from zero) arithmetic right shift by exponent (clamped to [0, 62]). */
int32_t mite_rounding_divide_by_pot(int32_t x, int32_t exponent);
/** TFLite's double-rounding MultiplyByQuantizedMultiplier. */
int32_t mite_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);
/** TFLite's single-rounding MultiplyByQuantizedMultiplier. */
int32_t mite_multiply_by_quantized_multiplier_single_rounding(int32_t x, int32_t multiplier,
                                                              int32_t shift);
/** round_ties_even(x * scale) in f64, saturated to i32. */
int32_t mite_requantize_float_scale(int32_t x, double scale);
/** Exact f64 / f32 roundings without libm (Rust `fmath`). */
double mite_round_ties_even_f64(double x);
float mite_round_ties_even_f32(float x);
double mite_trunc_f64(double x);
double mite_floor_f64(double x);
double mite_round_half_away_f64(double x);
/** e^x in f32 arithmetic only, a fixed operation order (Rust `fmath::exp_f32`): the same bits
 *  on every IEEE target compiled with -ffp-contract=off. */
float mite_exp_f32(float x);
/** Natural logarithm in f32 arithmetic only (Rust `fmath::ln_f32`). */
float mite_ln_f32(float x);

/** Apply a requantizer to accumulator `acc` of channel `channel`. */
int32_t mite_requant_apply(const mite_requant *r, int32_t acc, size_t channel);

/* ---------------------------------------------------------------- int8 forward */

/** int8 convolution parameters (Rust `Conv2dInt8Params`). */
typedef struct {
    mite_conv2d_geometry geometry;
    int8_t x_zero_point;
    const int8_t *w_zero_points; /* 0, 1 or c_out of them */
    size_t w_zero_points_len;
    mite_output_stage out;
    mite_bias_add bias_add;
} mite_conv2d_int8_params;

/** Scratch elements (i32) conv2d_int8 needs: one output plane. */
size_t mite_conv2d_int8_scratch_len(const mite_conv2d_int8_params *p);

/** int8 grouped / depthwise / pointwise convolution; bias may be NULL. */
mite_status mite_conv2d_int8(const int8_t *x, size_t x_len, const int8_t *w, size_t w_len,
                             const int32_t *bias, size_t bias_len, int8_t *out, size_t out_len,
                             int32_t *scratch, size_t scratch_len,
                             const mite_conv2d_int8_params *p);

/* ---------------------------------------------------------------- streamed bottleneck */

/** The three convolutions of a frozen inverted bottleneck (Rust `BottleneckInt8Params`):
 *  expand is dense (one group, any window: a pointwise expansion or e.g. a 3x3 stride-2 stem)
 *  [n, c_in, h, w] -> [n, c_mid, mh, mw], depthwise is depthwise (groups = c_mid) ->
 *  [n, c_mid, oh, ow], project is pointwise -> [n, c_out, oh, ow]. */
typedef struct {
    mite_conv2d_int8_params expand;
    mite_conv2d_int8_params depthwise;
    mite_conv2d_int8_params project;
} mite_bottleneck_int8_params;

/** The weights ([c_mid, c_in, ekh, ekw], [c_mid, 1, kh, kw], [c_out, c_mid, 1, 1]) and biases
 *  ([c_mid], [c_mid], [c_out]; each may be NULL) of a bottleneck (Rust `BottleneckWeights`). */
typedef struct {
    const int8_t *w_expand;
    size_t w_expand_len;
    const int32_t *b_expand;
    size_t b_expand_len;
    const int8_t *w_depthwise;
    size_t w_depthwise_len;
    const int32_t *b_depthwise;
    size_t b_depthwise_len;
    const int8_t *w_project;
    size_t w_project_len;
    const int32_t *b_project;
    size_t b_project_len;
} mite_bottleneck_int8_weights;

/** Scratch elements (int8) mite_bottleneck_int8 needs: the ring of rows of the first
 *  convolution's output (c_mid * min(dilation_h * (kh - 1) + 1, mh) * mw) then one depthwise
 *  row (c_mid * ow). */
size_t mite_bottleneck_int8_scratch_len(const mite_bottleneck_int8_params *p);

/** The fused bottleneck (Program kernel `bottleneck_int8`, IR op `q.bottleneck`): x
 *  [n, c_in, h, w] into out [n, c_out, oh, ow], bit-identical to mite_conv2d_int8 run on the
 *  three convolutions in turn; the expanded tensor and the depthwise output never exist whole.
 *  Operand order of the Program call: (x, w_expand, b_expand, w_depthwise, b_depthwise,
 *  w_project, b_project) -> out, scratch int8[mite_bottleneck_int8_scratch_len]. */
mite_status mite_bottleneck_int8(const int8_t *x, size_t x_len,
                                 const mite_bottleneck_int8_weights *weights, int8_t *out,
                                 size_t out_len, int8_t *scratch, size_t scratch_len,
                                 const mite_bottleneck_int8_params *p);

/** Two bottlenecks, the second reading the first's output through a pointwise expansion
 *  (Rust `BottleneckChainInt8Params`). */
typedef struct {
    mite_bottleneck_int8_params first;
    mite_bottleneck_int8_params second;
} mite_bottleneck_chain_int8_params;

/** Scratch elements (int8) mite_bottleneck_chain_int8 needs: the first block's, the link ring
 *  (c_link * span * w_link, span the second depthwise window's rows), one expanded channel's
 *  rows (span * w_link) and the second depthwise row (c_mid * ow). */
size_t mite_bottleneck_chain_int8_scratch_len(const mite_bottleneck_chain_int8_params *p);

/** The two bottlenecks streamed into one another (Program kernel `bottleneck_chain_int8`, IR op
 *  `q.bottleneck_chain`): x (the first block's input) into out (the second's output),
 *  bit-identical to mite_bottleneck_int8 run on each block in turn; the tensor between them
 *  never exists whole. weights points to the two blocks' weights in order. */
mite_status mite_bottleneck_chain_int8(const int8_t *x, size_t x_len,
                                       const mite_bottleneck_int8_weights *weights, int8_t *out,
                                       size_t out_len, int8_t *scratch, size_t scratch_len,
                                       const mite_bottleneck_chain_int8_params *p);

/** Scratch elements (int8) mite_bottleneck_chain_int8_in_place needs (Rust
 *  `bottleneck_chain_int8_in_place_scratch_len`): the chain's, then a ring of `delay` output
 *  rows (c_out * ow each), `delay` (>= 1) the most output rows kept before the input bytes they
 *  are staged on are dead. 0 when p cannot run in place (a batch of more than one image, an
 *  empty input, link or output, an input of one channel, or an output larger than one input
 *  channel); an admissible chain's scratch is never 0. */
size_t mite_bottleneck_chain_int8_in_place_scratch_len(
    const mite_bottleneck_chain_int8_params *p);

/** mite_bottleneck_chain_int8 with its output in its input's bytes (Rust
 *  `bottleneck_chain_int8_in_place`): buf (buf_len = c_in * h * w) holds the first block's
 *  input [1, c_in, h, w] and is consumed; on MITE_OK buf[0 .. out_len) is bit-identical to the
 *  out mite_bottleneck_chain_int8 writes (out_len the second block's output length) and the
 *  rest of buf is clobbered. Each output row is computed into the scratch's delay ring, staged
 *  in the input's second channel once the input rows under it are dead, and the staged output
 *  is transposed to the front after the last row. A chain that cannot run in place (see
 *  mite_bottleneck_chain_int8_in_place_scratch_len) is MITE_ERR_GEOMETRY; on any error buf is
 *  not written. scratch holds mite_bottleneck_chain_int8_in_place_scratch_len elements. */
mite_status mite_bottleneck_chain_int8_in_place(int8_t *buf, size_t buf_len,
                                                const mite_bottleneck_int8_weights *weights,
                                                int8_t *scratch, size_t scratch_len,
                                                const mite_bottleneck_chain_int8_params *p);

/** int8 fully connected parameters (Rust `LinearInt8Params`). */
typedef struct {
    mite_linear_geometry geometry;
    int8_t x_zero_point;
    const int8_t *w_zero_points;
    size_t w_zero_points_len;
    mite_output_stage out;
    mite_bias_add bias_add;
} mite_linear_int8_params;

/** int8 fully connected layer; bias may be NULL. */
mite_status mite_linear_int8(const int8_t *x, size_t x_len, const int8_t *w, size_t w_len,
                             const int32_t *bias, size_t bias_len, int8_t *out, size_t out_len,
                             const mite_linear_int8_params *p);

/** The left shift of TFLite's int8 Add. */
#define MITE_ADD_LEFT_SHIFT 20

/** int8 add parameters (Rust `AddParams`). */
typedef struct {
    mite_quant_params a, b, out;
    mite_act_range range;
    mite_rounding rounding;
    int32_t input_multipliers[2][2]; /* (multiplier, shift) of a and b */
    int32_t output_multiplier[2];
} mite_add_params;

/** One element of the int8 add. */
int8_t mite_add_one(const mite_add_params *p, int8_t a, int8_t b);
/** Element-wise int8 add. */
mite_status mite_add_int8(const int8_t *a, size_t a_len, const int8_t *b, size_t b_len,
                          int8_t *out, size_t out_len, const mite_add_params *p);

/** int8 average pooling (padding excluded from the count); dims = [n, c, h, w]. */
mite_status mite_avg_pool_int8(const int8_t *x, size_t x_len, const size_t dims[4],
                               const mite_window2d *window, mite_act_range range, int8_t *out,
                               size_t out_len);
/** int8 global average pooling keeping the input quantization; dims = [n, c, h, w]. */
mite_status mite_global_avg_pool_int8(const int8_t *x, size_t x_len, const size_t dims[4],
                                      mite_rounding rounding, int8_t *out, size_t out_len);

/** int8 mean parameters (Rust `MeanParams`). */
typedef struct {
    mite_quant_params input, output;
    mite_rounding rounding;
    double real;
    int32_t multiplier[2]; /* (multiplier, shift) */
} mite_mean_params;

/** int8 spatial mean with requantization (TFLite Mean); dims = [n, c, h, w]. */
mite_status mite_mean_int8(const int8_t *x, size_t x_len, const size_t dims[4], int8_t *out,
                           size_t out_len, const mite_mean_params *p);

/** Per-tensor or per-axis quantization (Rust `PerAxis`). */
typedef struct {
    const float *scales;
    size_t scales_len; /* >= 1 */
    const int8_t *zero_points;
    size_t zero_points_len; /* 0 or scales_len */
    size_t inner;           /* elements per channel step */
} mite_per_axis;

/** Quantize one value (NaN maps to the zero point). */
int8_t mite_quantize_one(float x, float scale, int8_t zero_point);
/** f32 -> int8 (ONNX QuantizeLinear). */
mite_status mite_quantize(const float *x, size_t x_len, int8_t *out, size_t out_len,
                          const mite_per_axis *p);
/** int8 -> f32 (ONNX DequantizeLinear). */
mite_status mite_dequantize(const int8_t *x, size_t x_len, float *out, size_t out_len,
                            const mite_per_axis *p);
/** int8 -> int8 with other quantization parameters. */
mite_status mite_requantize(const int8_t *x, size_t x_len, int8_t *out, size_t out_len,
                            mite_quant_params from, mite_quant_params to);

/* ---------------------------------------------------------------- f32 backward */

/** f32 grouped convolution (forward); bias may be NULL. */
mite_status mite_conv2d_f32(const float *x, size_t x_len, const float *w, size_t w_len,
                            const float *bias, size_t bias_len, float *out, size_t out_len,
                            const mite_conv2d_geometry *g);
/** Gradient of a convolution with respect to its input. */
mite_status mite_conv2d_backward_input_f32(const float *dy, size_t dy_len, const float *w,
                                           size_t w_len, float *out, size_t out_len,
                                           const mite_conv2d_geometry *g);
/** Gradient of a convolution with respect to its input, with an int8 weight used at its real
 *  value f32(q - z) * s of its channel (wp: scales_len >= 1), dequantized tap by tap
 *  (Rust `conv2d_backward_input_int8`; bit-exact with mite_dequantize + the f32 kernel). */
mite_status mite_conv2d_backward_input_int8w(const float *dy, size_t dy_len, const int8_t *w,
                                             size_t w_len, const mite_per_axis *wp, float *out,
                                             size_t out_len, const mite_conv2d_geometry *g);
/** mite_conv2d_backward_input_int8w written over its operand: buf holds dy (buf_len = output
 *  elements) on entry and dx on return (in its first input-length elements); the geometry must
 *  be depthwise with equal planes (scratch: one plane) or pointwise with c_in <= c_out
 *  (scratch: c_out) (Rust `conv2d_backward_input_int8_in_place`; bit-exact with it). */
mite_status mite_conv2d_backward_input_int8w_inplace(float *buf, size_t buf_len,
                                                     const int8_t *w, size_t w_len,
                                                     const mite_per_axis *wp, float *scratch,
                                                     size_t scratch_len,
                                                     const mite_conv2d_geometry *g);
/** Gradient of a convolution with respect to its weight. */
mite_status mite_conv2d_backward_weight_f32(const float *x, size_t x_len, const float *dy,
                                            size_t dy_len, float *out, size_t out_len,
                                            const mite_conv2d_geometry *g);
/** Weight gradient for input channels [start, start + len) of a dense convolution; x holds
 *  only those channels ([n, len, h, w]). */
mite_status mite_conv2d_backward_weight_slice_f32(const float *x, size_t x_len, const float *dy,
                                                  size_t dy_len, float *out, size_t out_len,
                                                  const mite_conv2d_geometry *g,
                                                  size_t slice_start, size_t slice_len);
/** Gradient of a convolution with respect to its bias. */
mite_status mite_conv2d_backward_bias_f32(const float *dy, size_t dy_len, float *out,
                                          size_t out_len, const mite_conv2d_geometry *g);

/** f32 fully connected layer (forward); bias may be NULL. */
mite_status mite_linear_f32(const float *x, size_t x_len, const float *w, size_t w_len,
                            const float *bias, size_t bias_len, float *out, size_t out_len,
                            const mite_linear_geometry *g);
/** Gradient of a linear layer with respect to its input. */
mite_status mite_linear_backward_input_f32(const float *dy, size_t dy_len, const float *w,
                                           size_t w_len, float *out, size_t out_len,
                                           const mite_linear_geometry *g);
/** Gradient of a linear layer with respect to its weight. */
mite_status mite_linear_backward_weight_f32(const float *x, size_t x_len, const float *dy,
                                            size_t dy_len, float *out, size_t out_len,
                                            const mite_linear_geometry *g);
/** Gradient of a linear layer with respect to its bias. */
mite_status mite_linear_backward_bias_f32(const float *dy, size_t dy_len, float *out,
                                          size_t out_len, const mite_linear_geometry *g);

/** Gradient of average pooling; input_dims = [n, c, h, w]. */
mite_status mite_avg_pool_backward_f32(const float *dy, size_t dy_len, const size_t input_dims[4],
                                       const mite_window2d *window, int count_include_pad,
                                       float *out, size_t out_len);
/** Gradient of global average pooling; input_dims = [n, c, h, w]. */
mite_status mite_global_avg_pool_backward_f32(const float *dy, size_t dy_len,
                                              const size_t input_dims[4], float *out,
                                              size_t out_len);

/** Words of a packed bit mask over len elements. */
size_t mite_mask_words(size_t len);
/** Bit i of the mask: min < x[i] < max. */
mite_status mite_make_mask_f32(const float *x, size_t x_len, uint32_t *out, size_t out_len,
                               float min, float max);
/** out[i] = bit i of mask ? dy[i] : 0. */
mite_status mite_apply_mask_f32(const float *dy, size_t dy_len, const uint32_t *mask,
                                size_t mask_len, float *out, size_t out_len);

/** Mean softmax cross-entropy of [n, c] logits against labels (with mite_exp_f32 /
 *  mite_ln_f32); scratch holds c floats. */
mite_status mite_softmax_cross_entropy_f32(const float *logits, size_t logits_len,
                                           const int32_t *labels, size_t labels_len,
                                           float *scratch, size_t scratch_len, size_t n, size_t c,
                                           float *loss);
/** Gradient of the mean softmax cross-entropy, times grad_loss. */
mite_status mite_softmax_cross_entropy_backward_f32(const float *logits, size_t logits_len,
                                                    const int32_t *labels, size_t labels_len,
                                                    float grad_loss, float *out, size_t out_len,
                                                    size_t n, size_t c);

/* ---------------------------------------------------------------- SGD / QAS update */

/** SplitMix64 finaliser of x (the stochastic rounding's hash). */
uint64_t mite_splitmix64(uint64_t x);
/** The uniform [0, 1) variate of stochastic rounding for (seed, step, element index). */
double mite_stochastic_u(int64_t seed, int64_t step, uint64_t index);

/** How an integer update is rounded (Rust `UpdateRounding`). */
typedef struct {
    int stochastic; /* 0: half to even; 1: floor(v + u(seed, step, index)) */
    int64_t seed;
    int64_t step;
} mite_update_rounding;

/** Scale and zero point of each channel of a quantized parameter (Rust `ChannelQuant`). */
typedef struct {
    const float *scales; /* finite, positive */
    const int32_t *zero_points;
    size_t channels; /* >= 1, length of both tables */
    size_t inner;    /* elements per channel step */
} mite_channel_quant;

/** Constants of one parameter update (Rust `SgdParams`). */
typedef struct {
    float eta; /* lr * lr_scale */
    float momentum;
    float weight_decay;
    int qas; /* quantization-aware scaling */
    mite_update_rounding rounding;
} mite_sgd_params;

/** acc += g; every `every`-th step out = acc / every, acc = 0 and *ready = 1 (else 0). */
mite_status mite_accumulate(const float *g, size_t g_len, float *acc, size_t acc_len, float *out,
                            size_t out_len, int64_t step, uint32_t every, int *ready);
/** f32 parameter update; m (momentum) may be NULL. */
mite_status mite_sgd_f32(float *w, size_t w_len, const float *g, size_t g_len, float *m,
                         size_t m_len, const mite_sgd_params *p);
/** int8 parameter update; m may be NULL. */
mite_status mite_sgd_i8(int8_t *q, size_t q_len, const float *g, size_t g_len, float *m,
                        size_t m_len, const mite_channel_quant *cq, const mite_sgd_params *p);
/** int32 parameter update (biases); m may be NULL. */
mite_status mite_sgd_i32(int32_t *q, size_t q_len, const float *g, size_t g_len, float *m,
                         size_t m_len, const mite_channel_quant *cq, const mite_sgd_params *p);

/** A gradient covering channels start..start+count of a parameter viewed as
 *  [outer, channels, inner] (Rust `SliceView`). */
typedef struct {
    size_t outer, channels, inner, start, count;
} mite_slice_view;

/** The convolution weight gradient of x, dy fused with the f32 update of w (Rust
 *  `update::conv2d_weight_sgd_f32`): no gradient buffer; view NULL (the gradient is all of w) or
 *  the channel slice the gradient covers; m may be NULL; scratch holds kh*kw floats. */
mite_status mite_conv2d_weight_sgd_f32(const float *x, size_t x_len, const float *dy,
                                       size_t dy_len, const mite_conv2d_geometry *g,
                                       const mite_slice_view *view, float *w, size_t w_len,
                                       float *m, size_t m_len, const mite_sgd_params *p,
                                       float *scratch, size_t scratch_len);
/** The int8 counterpart (Rust `update::conv2d_weight_sgd_i8`). */
mite_status mite_conv2d_weight_sgd_i8(const float *x, size_t x_len, const float *dy,
                                      size_t dy_len, const mite_conv2d_geometry *g,
                                      const mite_slice_view *view, int8_t *q, size_t q_len,
                                      float *m, size_t m_len, const mite_channel_quant *cq,
                                      const mite_sgd_params *p, float *scratch,
                                      size_t scratch_len);

/* ---------------------------------------------------------------- split weights */

/** Output channels whose weight rows mite_conv2d_int8_split gathers at once (Rust
 *  `split::SPLIT_GROUP`). */
#define MITE_SPLIT_GROUP 8u

/** An int8 weight stored as its trained first `kept` input channels [c_out, kept, kh, kw] and
 *  its frozen remainder [c_out, c_in - kept, kh, kw] (Rust `split::SplitWeight`). */
typedef struct {
    const int8_t *trained;
    size_t trained_len;
    const int8_t *frozen;
    size_t frozen_len;
    size_t kept;
} mite_split_weight;

/** The int8 gather scratch mite_conv2d_int8_split needs: the rows of MITE_SPLIT_GROUP output
 *  channels (fewer when the convolution has fewer). */
size_t mite_conv2d_int8_split_gather_len(const mite_conv2d_geometry *g);
/** mite_conv2d_int8 with a split weight (dense convolutions only); scratch holds one output
 *  plane, gather mite_conv2d_int8_split_gather_len weights (Rust `conv2d_int8_split`). */
mite_status mite_conv2d_int8_split(const int8_t *x, size_t x_len, const mite_split_weight *w,
                                   const int32_t *bias, size_t bias_len, int8_t *out,
                                   size_t out_len, int32_t *scratch, size_t scratch_len,
                                   int8_t *gather, size_t gather_len,
                                   const mite_conv2d_int8_params *p);
/** mite_conv2d_backward_input_int8w with a split weight (wp per tensor or per output channel,
 *  as for the joined weight; Rust `conv2d_backward_input_int8_split`). */
mite_status mite_conv2d_backward_input_int8w_split(const float *dy, size_t dy_len,
                                                   const mite_split_weight *w,
                                                   const mite_per_axis *wp, float *out,
                                                   size_t out_len,
                                                   const mite_conv2d_geometry *g);
/* ---------------------------------------------------------------- streamed bottleneck backward */

/** The constants of a streamed bottleneck backward (Rust `float::bottleneck_backward`). */
typedef struct {
    mite_conv2d_geometry project;   /* pointwise projection */
    mite_conv2d_geometry depthwise; /* depthwise, c_in = c_out = groups = the expanded channels */
    mite_conv2d_geometry expand;    /* pointwise expansion (c_in: 1 when neither dx nor the
                                       update is computed) */
    const mite_per_axis *project_w;   /* the projection weight's quantization */
    const mite_per_axis *depthwise_w; /* the depthwise weight's */
    const mite_per_axis *expand_w;  /* the expansion weight's, for dx (NULL: no dx); of the
                                       whole weight when split */
    size_t kept; /* a split expansion weight: the input channels of its trained slice (read
                    only when both the update and w_frozen are given) */
} mite_bottleneck_backward_params;

/** The update of the expansion's int8 weight, fused (NULL when the weight is frozen). */
typedef struct {
    const int8_t *x; /* the expansion's saved int8 input (split: its first kept channels) */
    size_t x_len;
    const mite_per_axis *x_quant; /* its quantization */
    int8_t *w; /* the weight (split: its trained slice), updated in place (dx reads each row
                  first) */
    size_t w_len;
    float *m; /* momentum state, or NULL */
    size_t m_len;
    const mite_channel_quant *cq;
    const mite_sgd_params *sgd;
} mite_bottleneck_backward_update;

/** The results besides the updated weight; each pointer may be NULL (not computed). */
typedef struct {
    float *dx; /* [c_in, h, w] */
    size_t dx_len;
    float *db_depthwise; /* [c_mid] */
    size_t db_depthwise_len;
    float *db_expand; /* [c_mid] */
    size_t db_expand_len;
} mite_bottleneck_backward_grads;

/** Floats of the kernel's scratch: one depthwise output plane, one input plane, c_in + 2. */
size_t mite_bottleneck_backward_scratch_len(const mite_bottleneck_backward_params *p);

/** The backward pass of an inverted bottleneck from the gradient dy at its projection's output,
 *  one expanded channel at a time: masks, bias gradients, the depthwise transposed convolution,
 *  dx and the expansion weight's update (u; else w_frozen, read by dx, may be NULL). With both
 *  u and w_frozen the weight is split: u->w is the trained slice of p->kept input channels,
 *  w_frozen the frozen remainder. Bit-exact with the unfused kernels (Rust
 *  `float::bottleneck_backward`). */
mite_status mite_bottleneck_backward(const float *dy, size_t dy_len, const int8_t *w_project,
                                     size_t w_project_len, const uint32_t *mask_depthwise,
                                     size_t mask_depthwise_len, const int8_t *w_depthwise,
                                     size_t w_depthwise_len, const uint32_t *mask_expand,
                                     size_t mask_expand_len, const int8_t *w_frozen,
                                     size_t w_frozen_len, const mite_bottleneck_backward_update *u,
                                     mite_bottleneck_backward_grads *out, float *scratch,
                                     size_t scratch_len, const mite_bottleneck_backward_params *p);

#ifdef __cplusplus
}
#endif

#endif /* MITE_KERNELS_H */
