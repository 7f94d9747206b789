"""Independent references, in one place: real Keras 3 (conformance), scikit-learn and plain numpy."""
