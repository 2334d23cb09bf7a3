#!/bin/sh
# Runs each fuzz target for SECONDS (default 600), one at a time, niced, with one job, and
# prints the executions and corpus size of each. Run from the fuzz directory after
# `cargo run --release --example fuzz_seeds` in the workspace root. Inputs are capped at 32 KiB:
# with the 0.5-0.8 MB shared models in the corpus (`-- --shared`) import runs at ~2 execs/s.
set -eu
SECONDS_EACH=${1:-600}
shift || true
TARGETS=${*:-parse_mir import_onnx read_npy front_pipeline}
mkdir -p logs
for t in $TARGETS; do
    mkdir -p "corpus/$t"
    nice -n 10 cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len=32768 -jobs=1 -workers=1 -rss_limit_mb=2048 \
        > "logs/$t.out" 2>&1 || echo "$t: cargo fuzz exited with $?"
    # With -jobs, libFuzzer writes the worker's log to fuzz-0.log.
    mv -f fuzz-0.log "logs/$t.log" 2>/dev/null || true
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "logs/$t.log" | tail -1)
    crash=$(grep -c 'ERROR: libFuzzer\|panicked at' "logs/$t.log" || true)
    echo "$t: ${runs:-no summary} ; corpus $(ls "corpus/$t" | wc -l) files ; crash reports $crash"
done
