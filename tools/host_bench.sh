#!/usr/bin/env bash
# Host benchmark (issue #11): one training step of the generated C program (`mite compile ...
# --emit c`, the project's strict flags) beside the JAX baseline (../shared/bench/jax_baseline.py,
# float32, XLA on the CPU) in the same invocation, for MCUNet-5FPS and MbV2-w0.35 with `last:6`
# and the paper scheme. The C program is built twice: portable (`-O2`, the Makefile's default)
# and native (`NATIVE_OPT`, default `-O3 -march=native`; -ffp-contract=off stays, so both must
# print the same losses, which the script checks). Prints ms/step (median of STEPS timed steps
# after WARMUP) and peak RSS (/usr/bin/time) of both sides.
#
# usage: tools/host_bench.sh [STEPS] [WARMUP]     (defaults 30, 5)
# env:   MITE_PYTHON (else ~/.cache/mite-ci-venv/bin/python, else python3) with jax and onnx;
#        MITE_SHARED (else ../shared); OUT (work folder, default target/host-bench);
#        NATIVE_OPT (default "-O3 -march=native")
#
# JAX has no sparse scheme: both mite schemes are compared with its `last6` (last 6 convs and the
# classifier, 1000 classes); mite trains a fresh 10-class head. The C program is int8 with f32
# gradients; JAX is float32 throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
WARMUP=${2:-5}
SHARED=${MITE_SHARED:-../shared}
OUT=${OUT:-target/host-bench}
CC=${CC:-gcc}
NATIVE_OPT=${NATIVE_OPT:--O3 -march=native}
PY=${MITE_PYTHON:-$HOME/.cache/mite-ci-venv/bin/python}
[ -x "$PY" ] || PY=python3
[ -x /usr/bin/time ] || { echo "host_bench: /usr/bin/time is needed for peak RSS" >&2; exit 1; }
for f in models/mcunet-5fps.onnx models/mbv2-w0.35.onnx bench/jax_baseline.py; do
    [ -e "$SHARED/$f" ] || { echo "host_bench: $SHARED/$f is missing" >&2; exit 1; }
done
JAX=1
if ! "$PY" -c 'import jax, onnx' 2>/dev/null; then
    echo "host_bench: SKIPPED the JAX side: $PY cannot import jax and onnx (set MITE_PYTHON)"
    JAX=0
fi
cargo build --release --quiet --bin mite
MITE=target/release/mite
mkdir -p "$OUT"

# The timing main: a seeded pseudo-random int8 image per step (labels 0..9), WARMUP untimed
# steps, then STEPS steps each timed with CLOCK_MONOTONIC; prints the median and the failures.
cat > "$OUT/bench.c" <<'C'
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mite_program.h"

static int8_t image[MITE_INPUT_LEN];
static uint32_t seed = 12345u;

static void next_image(void) {
    size_t i;
    for (i = 0; i < MITE_INPUT_LEN; i++) {
        seed = seed * 1664525u + 1013904223u;
        image[i] = (int8_t)((int)((seed >> 24) & 0xffu) - 128);
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 30, warmup = argc > 2 ? atoi(argv[2]) : 5;
    int i, failed = 0;
    double *ms = malloc(sizeof(double) * (size_t)(steps > 0 ? steps : 1));
    float loss = 0.0f;
    if (ms == NULL || steps < 1) {
        return 2;
    }
    mite_init();
    mite_set_lr(0.001f);
    for (i = 0; i < warmup + steps; i++) {
        struct timespec t0, t1;
        next_image();
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (mite_train_step(image, (int32_t)(i % (int)MITE_CLASSES), &loss) != MITE_OK) {
            failed++;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (i >= warmup) {
            ms[i - warmup] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        }
    }
    qsort(ms, (size_t)steps, sizeof *ms, cmp);
    printf("c-ms-per-step %.3f\nc-failed-steps %d\nc-last-loss %.4f\n", ms[steps / 2], failed, (double)loss);
    free(ms);
    return failed == 0 ? 0 : 1;
}
C

printf '%-12s %-11s | %11s %11s %10s | %11s %11s | %7s %7s %7s\n' model scheme "C -O2 ms" "C native ms" "C RSS" "JAX ms" "JAX RSS" "speed" "native" "memory"
for model in mcunet-5fps mbv2-w0.35; do
    for scheme in last:6 paper:99kb; do
        dir="$OUT/${model}-${scheme/:/-}"
        rm -rf "$dir"
        "$MITE" compile "$SHARED/models/$model.onnx" --scheme "$scheme" --classes 10 \
            --emit c -o "$dir" > "$dir.compile.log" 2>&1 || { cat "$dir.compile.log" >&2; exit 1; }
        cp "$OUT/bench.c" "$dir/bench.c"
        # The program's sources as its Makefile lists them, without the self-test's main.
        srcs=$(sed -n 's/^SRCS = //p' "$dir/Makefile" | sed 's/selftest\.c//')
        for build in portable native; do
            if [ "$build" = portable ]; then
                flags=$(make -s --no-print-directory -C "$dir" print-cflags)
            else
                flags=$(make -s --no-print-directory -C "$dir" print-cflags OPT="$NATIVE_OPT")
            fi
            # shellcheck disable=SC2086
            (cd "$dir" && $CC $flags -I. $srcs bench.c -lm -o "bench-$build")
            /usr/bin/time -f 'peak-rss-kb %M' -o "$dir/c-$build.rss" "$dir/bench-$build" "$STEPS" \
                "$WARMUP" > "$dir/c-$build.out"
        done
        c_ms=$(sed -n 's/^c-ms-per-step //p' "$dir/c-portable.out")
        n_ms=$(sed -n 's/^c-ms-per-step //p' "$dir/c-native.out")
        c_kb=$(sed -n 's/^peak-rss-kb //p' "$dir/c-portable.rss")
        if [ "$(sed -n 's/^c-last-loss //p' "$dir/c-portable.out")" != \
            "$(sed -n 's/^c-last-loss //p' "$dir/c-native.out")" ]; then
            echo "host_bench: $model $scheme: the native build's loss differs from the portable one's" >&2
            exit 1
        fi
        j_ms=- j_kb=- speed=- nspeed=- mem=-
        if [ "$JAX" = 1 ]; then
            /usr/bin/time -f 'peak-rss-kb %M' -o "$dir/jax.rss" \
                "$PY" "$SHARED/bench/jax_baseline.py" "$SHARED/models/$model.onnx" last6 "$STEPS" \
                > "$dir/jax.out" 2>&1
            j_ms=$(grep -oE '[0-9]+(\.[0-9]+)? *ms' "$dir/jax.out" | tail -1 | grep -oE '[0-9.]+')
            j_kb=$(sed -n 's/^peak-rss-kb //p' "$dir/jax.rss")
            speed=$(awk -v c="$c_ms" -v j="$j_ms" 'BEGIN { printf "%.2fx", j / c }')
            nspeed=$(awk -v c="$n_ms" -v j="$j_ms" 'BEGIN { printf "%.2fx", j / c }')
            mem=$(awk -v c="$c_kb" -v j="$j_kb" 'BEGIN { printf "1/%.0f", j / c }')
        fi
        printf '%-12s %-11s | %8s ms %8s ms %7s KB | %8s ms %8s KB | %7s %7s %7s\n' \
            "$model" "$scheme" "$c_ms" "$n_ms" "$c_kb" "$j_ms" "$j_kb" "$speed" "$nspeed" "$mem"
    done
done
echo "speed: JAX ms / C ms (above 1: C is faster), for the -O2 and the native build; memory: C peak RSS (-O2) / JAX peak RSS."
echo "C -O2: $CC $(make -s --no-print-directory -C "$dir" print-cflags)"
echo "C native: $CC $(make -s --no-print-directory -C "$dir" print-cflags OPT="$NATIVE_OPT")"
echo "median of $STEPS steps after $WARMUP warm-up (both builds print the same last loss); JAX: its own timing of $STEPS steps after warm-up."
