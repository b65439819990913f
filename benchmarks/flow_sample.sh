#!/usr/bin/env bash
# Regenerates docs/flow.md's sample output from real runs (paste the result in).
#   bash benchmarks/flow_sample.sh > /tmp/sample.txt
. "$(dirname "$0")/sample_lib.sh"
"$root/.venv/bin/python" -c "from cnp_convert.checkpoints.fabricate import fabricate_release; fabricate_release('L', '.')"
run inspect ConvNeXtPose_L.tar
run legacy ConvNeXtPose_L.tar
run onnx --checkpoint ConvNeXtPose_L.canonical.safetensors -o convnextpose_l.onnx
run verify convnextpose_l.onnx --checkpoint ConvNeXtPose_L.tar
cp ConvNeXtPose_L.tar snapshot_83.pth
echo "\$ cnp-convert legacy snapshot_83.pth --variant XS      # the L snapshot, wrongly called XS"
"$cnp" legacy snapshot_83.pth --variant XS 2>&1; rc=$?
echo "\$ echo \$?"; echo "$rc"
echo
run verify convnextpose_l.onnx --checkpoint ConvNeXtPose_L.tar --device cuda
rm -rf "$work"
