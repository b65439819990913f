"""The names of every choice the tool offers and the defaults its commands show, as plain data.

The library modules that own each choice import it from here, and the command line reads it
without importing torch, onnx or onnxruntime: --version, --help and shell completion start in a
fraction of a second (docs/commands.md).
"""

from __future__ import annotations

CHECKPOINT_FORMATS = ("safetensors", "pth")  # checkpoints.writer
DATA_LAYOUTS = ("reference", "kaggle")  # h36m.synthetic
DEVICES = ("auto", "cpu", "cuda")  # runtimes.sessions
RUNTIMES = ("onnxruntime", "openvino", "opencv", "tflite")  # runtimes.sessions
OV_EXECUTION_PRECISIONS = ("auto", "f32", "bf16")  # runtimes.openvino_session
PRECISIONS = ("fp32", "fp16", "int8")  # verdicts.tolerances
EXPORTERS = ("dynamo", "torchscript")  # export.options
DEFAULT_OPSET = 18  # export.options
# Where the graph will run (export.options): the opset each target's default export takes. The
# converters onnx2torch 1.5 (no Resize 18) and onnx2tf 1.x (wrong coordinates at 18, right at 11)
# need opset 11; every other runtime measured takes 18 (docs/compatibility.md).
TARGETS = ("onnxruntime", "openvino", "opencv", "tflite", "onnx2torch")
TARGET_OPSETS = {"tflite": 11, "onnx2torch": 11}
FINAL_CONV_BEFORE_UPSAMPLE = "final_conv_before_upsample"  # export.rewrite
SOFT_ARGMAX_MOMENTS = "soft_argmax_moments"
REWRITES = (FINAL_CONV_BEFORE_UPSAMPLE, SOFT_ARGMAX_MOMENTS)
DEFAULT_CALIBRATION_COUNT = 128  # docs/precision_and_speed.md, "Reduced precision …"
VERIFY_SAMPLES = 8  # verdicts.verify: seeded images per batch size of an fp32 verdict
POSE_FRAMES = 32  # verdicts.judge: crops a reduced-precision verdict judges the pose change on
BENCH_RUNS = 20  # evaluation.bench: timed runs per backend and batch
EVAL_BACKENDS = ("torch", "onnx")  # evaluation.run
