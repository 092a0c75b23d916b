"""PyTorch side of the model contract: reference architectures and the ONNX exporter.

Needs torch (the optional export/training extra, requirements-dev.txt). Runtime code (core/,
ros/, nodes/) never imports this package; it runs the exported ONNX files with onnxruntime.
"""
