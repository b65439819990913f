"""cnp-convert: ConvNeXtPose checkpoints to verified ONNX models."""

__version__ = "0.1.0"
