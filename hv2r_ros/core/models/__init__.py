"""ONNX models: the self-describing contract, the runtime and preprocessing."""
