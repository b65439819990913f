#!/usr/bin/env bash
# Regenerates the README's quick start from real runs on the released XS (paste the result in).
#   bash benchmarks/readme_quickstart.sh > /tmp/quickstart.txt
. "$(dirname "$0")/sample_lib.sh"
"$root/.venv/bin/python" -c "from cnp_convert.checkpoints.released import released_release; released_release('.')"
run inspect ConvNeXtPose_XS.tar
run onnx --checkpoint ConvNeXtPose_XS.tar -o xs.onnx --seed 1
run verify xs.onnx --checkpoint ConvNeXtPose_XS.tar --seed 1
run onnx --checkpoint ConvNeXtPose_XS.tar --precision int8 -o xs_int8.onnx --seed 1
cp -r "$root/converter/h36m/photos" photos
run predict xs.onnx photos -o predicted
rm -rf "$work"
