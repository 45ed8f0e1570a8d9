"""The sandbox: `process` (function side) runs `worker` (its own process, with TensorFlow)."""
