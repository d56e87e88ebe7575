"""The package's version, at the bottom so that every layer can name it (the ONNX
producer version, say); `dslnet.__version__` re-exports it."""

__version__ = "0.1.0"
