#!/usr/bin/env bash
# The issue #8 experiment: a float MCUNet-5FPS (dequantized weights, explicit Relu/Clip, some
# BatchNormalization unfolded) quantized by `mite quantize` with calibration on 100 Imagenette
# images, its top-1 on the 200 val images next to the float model's (mite and onnxruntime), and
# onnxruntime's logits on the written QDQ file against mite's `--rounding onnxruntime`.
# Then training on CIFAR-10 (last:6, 1,000 images, fresh 10-class head) next to the original int8
# model. Long: run in the background with nice.
#   usage: tools/quantize_mcunet.sh [OUT_DIR]   (needs MITE_PYTHON with onnxruntime for the ORT part)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/quantize-mcunet}"
mkdir -p "$out"
shared="${MITE_SHARED:-../shared}"
data="$shared/datasets/imagenette"
cargo build --release --bin mite --example float_mcunet
mite=target/release/mite
python="${MITE_PYTHON:-python3}"

target/release/examples/float_mcunet "$shared/models/mcunet-5fps.onnx" "$out/float.onnx"
$mite eval "$out/float.onnx" --data "$data" --split val --dump-logits "$out/float_mite.npy"
# quantized: 8-bit weights (the paper's); quantized7: 7-bit weights (--reduce-range), which
# onnxruntime computes exactly on x86 CPUs without VNNI (its u8 x s8 kernels saturate otherwise)
$mite quantize "$out/float.onnx" --calibrate "$data" --calibrate-split val --calibrate-limit 100 \
    -o "$out/quantized.onnx" --stats
$mite quantize "$out/float.onnx" --calibrate "$data" --calibrate-split val --calibrate-limit 100 \
    --reduce-range -o "$out/quantized7.onnx"
for m in quantized quantized7; do
    for r in double onnxruntime; do
        $mite eval "$out/$m.onnx" --data "$data" --split val --rounding $r \
            --dump-logits "$out/${m}_mite_$r.npy"
    done
done
if "$python" -c "import onnxruntime" 2>/dev/null; then
    for m in float quantized quantized7; do
        "$python" tools/ort_logits.py "$out/$m.onnx" "$data/val_images.npy" 200 "$out/${m}_ort.npy"
    done
    "$python" - "$out" "$data/val_labels.npy" <<'PY'
import sys, numpy as np
out, labels = sys.argv[1], np.load(sys.argv[2]).astype(np.int64)
def acc(x): return int((x.argmax(1) == labels[: len(x)]).sum())
fm, fo = np.load(f"{out}/float_mite.npy"), np.load(f"{out}/float_ort.npy")
print(f"float: mite {acc(fm)}/200, onnxruntime {acc(fo)}/200, max |diff| {np.abs(fm - fo).max():.2e}, "
      f"top-1 agree {(fm.argmax(1) == fo.argmax(1)).sum()}/200")
for m in ["quantized", "quantized7"]:
    qm, qo = np.load(f"{out}/{m}_mite_onnxruntime.npy"), np.load(f"{out}/{m}_ort.npy")
    qd = np.load(f"{out}/{m}_mite_double.npy")
    print(f"{m}: mite(onnxruntime rounding) {acc(qm)}/200, mite(double) {acc(qd)}/200, onnxruntime {acc(qo)}/200")
    print(f"{m} mite vs onnxruntime: identical logits {np.array_equal(qm, qo)}, max |diff| {np.abs(qm - qo).max():.3e}, "
          f"images differing {(np.abs(qm - qo).max(1) > 0).sum()}, top-1 agree {(qm.argmax(1) == qo.argmax(1)).sum()}/200")
PY
else
    echo "SKIPPED onnxruntime comparison: $python has no onnxruntime"
fi

cifar="$shared/datasets/cifar10"
for m in "$out/quantized.onnx" "$shared/models/mcunet-5fps.onnx"; do
    $mite train "$m" --data "$cifar" --classes 10 --scheme last:6 --lr 0.001 --limit 1000 \
        --eval-split test --eval-limit 300 --report-json "$out/train_$(basename "$m" .onnx).json"
done
