"""nnlint: a linter and autofixer for PyTorch model code."""

__version__ = "0.1.0"
