"""Weight quantization applied when a model is loaded (vLLM's `--quantization`)."""
QUANTIZATION_METHODS = ("fp8",)
