"""The ONNX side: export, BatchNorm folding, cheaper precisions."""
