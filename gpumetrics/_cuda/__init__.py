"""CUDA launchers: one thin module per kernel file in ``kernels/``, mirroring ``gpumetrics/_cpu`` by name."""
