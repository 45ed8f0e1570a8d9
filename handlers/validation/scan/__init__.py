"""Static scans of untrusted model files, without TensorFlow (function side, bounded parsers)."""
