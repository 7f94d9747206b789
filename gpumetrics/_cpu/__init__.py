"""Numba implementations: one module per op, same function names and signatures as ``gpumetrics/_cuda``."""
