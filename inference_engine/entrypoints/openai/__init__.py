"""The OpenAI-compatible server: protocol models, one serving module per endpoint, the app."""
