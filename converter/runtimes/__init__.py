"""Runtimes: onnxruntime and OpenVINO sessions, providers read back, the environment report."""
