"""Reading ONNX graphs: the facts of a graph (contract) and its metadata."""
