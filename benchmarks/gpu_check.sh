#!/usr/bin/env bash
# The GPU check: on a one-GPU machine whose Python has a CUDA PyTorch, run everything CUDA and put
# the results in one folder (JSON reports + summary.md). Offline: onnxruntime-gpu comes from a
# wheel file given here (or is already installed). Under 8 minutes on one modern GPU.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [onnxruntime_gpu-*.whl]
#   DEVICE=cpu bash benchmarks/gpu_check.sh OUT_DIR      # rehearsal of the same steps on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_check.sh OUT_DIR [onnxruntime_gpu wheel]}
wheel=${2:-}
device=${DEVICE:-cuda}
python=${PYTHON:-python3}
mkdir -p "$out"
log="$out/log.txt"
: > "$log"
say() { echo "== $*" | tee -a "$log"; }

if [ -n "$wheel" ]; then
    say "installing $wheel into $out/site (offline, no dependencies)"
    "$python" -m pip install -q --no-deps --no-index --target "$out/site" "$wheel" >>"$log" 2>&1 \
        || { echo "cannot install $wheel" | tee -a "$log"; exit 2; }
    export PYTHONPATH="$PWD/$out/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
cnp() { "$python" -c 'from converter.cli.main import main; main()' "$@"; }

say "doctor"
cnp doctor --device "$device" --json > "$out/doctor.json" 2>>"$log"
echo "doctor exit $?" | tee -a "$log"

if "$python" -c "import pytest" 2>/dev/null; then
    say "pytest -m cuda"
    "$python" -m pytest -q -m cuda -p no:cacheprovider tests > "$out/pytest_cuda.txt" 2>&1
    echo "pytest exit $?" | tee -a "$log"
else
    echo "pytest is not installed here: cuda tests not run" | tee -a "$log"
fi

work="$out/work"
mkdir -p "$work"
say "released XS as a Drive-style file, and the synthetic set"
"$python" -c "from converter.checkpoints.released import released_release; released_release('$work')" \
    >>"$log" 2>&1
cnp demo-data "$work/h36m" >>"$log" 2>&1
for variant in ${VARIANTS:-XS S M L}; do
    if [ "$variant" = XS ]; then ckpt=(--checkpoint "$work/ConvNeXtPose_XS.tar"); else ckpt=(--variant "$variant"); fi
    for precision in fp32 fp16; do
        graph="$work/${variant}_${precision}.onnx"
        say "$variant $precision: export, verify --device $device"
        cnp onnx "${ckpt[@]}" --precision "$precision" -o "$graph" --force --json \
            > "$out/onnx_${variant}_${precision}.json" 2>>"$log"
        cnp verify "$graph" "${ckpt[@]}" --device "$device" --batch 1,32 --json \
            > "$out/verify_${variant}_${precision}.json" 2>>"$log"
        echo "verify exit $?" | tee -a "$log"
    done
done
say "eval --device $device (released XS, both backends)"
cnp eval --data "$work/h36m" --checkpoint "$work/ConvNeXtPose_XS.tar" --onnx "$work/XS_fp32.onnx" \
    --device "$device" --no-flip --json > "$out/eval_XS.json" 2>>"$log"
echo "eval exit $?" | tee -a "$log"
for variant in ${BENCH_VARIANTS:-XS L}; do
    if [ "$variant" = XS ]; then ckpt=(--checkpoint "$work/ConvNeXtPose_XS.tar"); else ckpt=(--variant "$variant"); fi
    for precision in fp32 fp16; do
        say "bench $variant $precision --device $device"
        cnp bench "$work/${variant}_${precision}.onnx" "${ckpt[@]}" --device "$device" \
            --batch 1,32 --runs 30 --json > "$out/bench_${variant}_${precision}.json" 2>>"$log"
        echo "bench exit $?" | tee -a "$log"
    done
done
say "summary"
"$python" benchmarks/gpu_summary.py "$out" > "$out/summary.md" 2>>"$log"
cat "$out/summary.md"
