#!/usr/bin/env bash
# Phase 3 experiment: MCUNet-5FPS (head replaced by a fresh 10-class classifier) fine-tuned on the
# first 1,000 CIFAR-10 training images for one epoch, last two blocks trained (last:6), batch 1,
# SGD without momentum; test accuracy on the first 1,000 test images. Each precision at three
# learning rates; the table lists every run (pick the best per precision).
#
# Usage: tools/cifar_transfer.sh [SHARED_DIR] [OUT_DIR]   (defaults: ../shared, target/cifar_transfer)
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${1:-../shared}"
out="${2:-target/cifar_transfer}"
mkdir -p "$out"
cargo build --release -q
mite=target/release/mite
run() { # name precision qas lr
    "$mite" train "$shared/models/mcunet-5fps.onnx" --data "$shared/datasets/cifar10" \
        --split train --limit 1000 --epochs 1 --eval-split test --eval-limit 1000 \
        --classes 10 --scheme last:6 --precision "$2" --qas "$3" --lr "$4" --lr-scale-bias 0.5 --seed 0 \
        --report-json "$out/$1.json" > "$out/$1.txt" 2> "$out/$1.log" || echo "FAILED $1 (see $out/$1.log)"
}
jobs=(
    "fp32_lr0.001 fp32 off 0.001" "fp32_lr0.003 fp32 off 0.003" "fp32_lr0.01 fp32 off 0.01"
    "int8qas_lr0.0003 int8 on 0.0003" "int8qas_lr0.001 int8 on 0.001" "int8qas_lr0.003 int8 on 0.003"
    "int8noqas_lr100 int8 off 100" "int8noqas_lr1000 int8 off 1000" "int8noqas_lr10000 int8 off 10000"
)
for j in "${jobs[@]}"; do
    # shellcheck disable=SC2086
    run $j &
    while [ "$(jobs -r | wc -l)" -ge "${MITE_JOBS:-2}" ]; do wait -n; done
done
wait
printf '%-22s %10s %10s %8s\n' run loss_start loss_end eval_acc
for j in "${jobs[@]}"; do
    name=${j%% *}
    python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    print(f"{sys.argv[2]:22s} {r['initial_train_loss']:10.4f} {r['final_train_loss']:10.4f} {100*r['eval_accuracy']:7.1f}%")
except Exception as e:
    print(f"{sys.argv[2]:22s} no report ({e})")
PY
done
