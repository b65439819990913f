"""Verdicts: runtimes and providers, parity of onnxruntime against PyTorch, verify, bench."""
