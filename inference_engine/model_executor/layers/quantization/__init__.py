"""Weight quantization applied when a model is loaded (vLLM's `--quantization`; the method names
are config.QUANTIZATION_METHODS)."""
